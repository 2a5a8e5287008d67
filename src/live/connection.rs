//! One client connection speaking Channels V2, without I/O: the transport
//! feeds it text frames and cluster commands, and sends what it writes out.
//!
//! It owns the connection's channels (one [`Joined`] view per `lv:` topic),
//! so a hostile frame can only ever reach its own connection's state.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use serde_json::{Value, json};

use super::app::{EventRefusal, JoinError, JoinRequest, Joined, LiveApp};
use super::socket::Redirect;
use super::wire::{self, FrameError, Message};
use crate::audit::AuditRecord;
use crate::session::Session;
use crate::time::Timestamp;

/// Phoenix's default limit of channels one connection may join.
pub const DEFAULT_MAX_CHANNELS: usize = 100;

/// A joined channel.
struct Channel {
    topic: String,
    join_ref: Option<String>,
    joined: Joined,
}

/// The joined channels, boxed in a `Vec`: at most a hundred, usually one,
/// and an idle connection should cost bytes, not a map's node.
// Boxed because a `Vec`'s first allocation has room for four elements: four
// pointers, not four 400-byte channels.
#[allow(clippy::vec_box)]
#[derive(Default)]
struct Channels(Vec<Box<Channel>>);

impl Channels {
    fn get_mut(&mut self, topic: &str) -> Option<&mut Channel> {
        self.0.iter_mut().find(|c| c.topic == topic).map(|c| &mut **c)
    }

    fn remove(&mut self, topic: &str) -> Option<Box<Channel>> {
        let index = self.0.iter().position(|c| c.topic == topic)?;
        Some(self.0.swap_remove(index))
    }

    fn topics(&self) -> Vec<String> {
        self.0.iter().map(|c| c.topic.clone()).collect()
    }
}

/// The protocol state of one connection: its handshake session and joined
/// views. Frames for the client are appended to the `out` vectors the
/// methods take; the transport sends them in order.
pub struct LiveConnection {
    app: Arc<LiveApp>,
    session: Option<Session>,
    channels: Channels,
    max_channels: usize,
}

impl core::fmt::Debug for LiveConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LiveConnection")
            .field("has_session", &self.session.is_some())
            .field("channels", &self.channels.topics())
            .finish_non_exhaustive()
    }
}

impl LiveConnection {
    /// A connection whose handshake established `session` (`None` when its
    /// cookie or CSRF token did not verify: every join then answers `stale`).
    pub fn new(app: Arc<LiveApp>, session: Option<Session>, max_channels: usize) -> Self {
        Self { app, session, channels: Channels::default(), max_channels }
    }

    /// How many channels are joined.
    pub fn channels(&self) -> usize {
        self.channels.0.len()
    }

    /// Handles one text frame at `now`. A frame that is not a V2 message is
    /// an error: the transport closes this connection (there is no ref to
    /// answer); everything else is answered through `out`.
    pub async fn receive(&mut self, text: &str, now: Timestamp, out: &mut Vec<String>) -> Result<(), FrameError> {
        // The frame's array and the event envelope sit above the payload.
        let message = wire::decode(text, self.app.limits().max_depth.saturating_add(3))?;
        self.dispatch(message, text.len(), now, out).await;
        Ok(())
    }

    async fn dispatch(&mut self, message: Message, frame_len: usize, now: Timestamp, out: &mut Vec<String>) {
        let Message { join_ref, msg_ref, topic, event, payload } = message;
        let reply =
            |ok: bool, response: Value| wire::reply(join_ref.as_deref(), msg_ref.as_deref(), &topic, ok, response);
        match (topic.as_str(), event.as_str()) {
            ("phoenix", "heartbeat") => out.push(reply(true, json!({}))),
            (_, "phx_leave") => {
                self.channels.remove(&topic);
                out.push(reply(true, json!({})));
            }
            (lv, "phx_join") if lv.starts_with("lv:") => {
                if let Some(old) = self.channels.remove(&topic) {
                    out.push(wire::close(old.join_ref.as_deref(), &topic));
                }
                if self.channels.0.len() >= self.max_channels {
                    out.push(reply(false, json!({"reason": "too many channels joined"})));
                    return;
                }
                let request = JoinRequest { topic: &topic, payload: &payload, connect_session: self.session.as_ref() };
                match self.app.join(request, now).await {
                    Ok(mut joined) => {
                        // Sent, not kept: an idle view holds no copy of its rendering.
                        let rendered = core::mem::take(&mut joined.rendered);
                        out.push(reply(true, json!({"rendered": rendered})));
                        let join_ref = join_ref.clone();
                        self.channels.0.push(Box::new(Channel { topic: topic.clone(), join_ref, joined }));
                    }
                    Err(error) => out.push(reply(false, error.reply())),
                }
            }
            _ => {
                let Some(channel) = self.channels.get_mut(&topic) else {
                    out.push(reply(false, json!({"reason": "unmatched topic"})));
                    return;
                };
                // A message of an earlier join of this topic: stale, as Phoenix.
                if channel.join_ref != join_ref {
                    return;
                }
                if event != "event" {
                    out.push(reply(false, json!({"reason": "unknown event"})));
                    return;
                }
                let Some(name) = payload.get("event").and_then(Value::as_str) else {
                    out.push(reply(false, json!({"reason": "invalid payload"})));
                    return;
                };
                let value = payload.get("value").cloned().unwrap_or_else(|| json!({}));
                // The value is part of the frame: measure it only when the
                // frame itself is over the limit.
                let max_bytes = self.app.limits().max_bytes;
                if frame_len > max_bytes && serde_json::to_string(&value).map_or(true, |text| text.len() > max_bytes) {
                    self.app.audit().record(AuditRecord::EventDenied {
                        view: String::from(channel.joined.socket.view()),
                        event: String::from(name),
                        rule: String::from("payload size limit"),
                    });
                    out.push(reply(false, EventRefusal::TooLarge.reply()));
                    return;
                }
                let handled = self.app.handle_event(&mut channel.joined, name, &value).await;
                channel.joined.rendered = Value::Null;
                match handled {
                    Ok(outcome) => {
                        out.push(reply(true, json!({"reply": outcome.reply, "rendered": outcome.rendered})));
                        if let Some(redirect) = outcome.redirect {
                            redirect_out(&mut self.channels, &topic, redirect, out);
                        }
                    }
                    Err(refusal) => out.push(reply(false, refusal.reply())),
                }
            }
        }
    }

    /// Re-runs the `on_mount` hooks of every joined view in place (a
    /// cluster `reauthorize`). Views whose hooks now halt are sent their
    /// redirect and closed; the others keep running with fresh assigns.
    /// A view whose `live_session` is gone, or whose hooks break their
    /// contract, is closed with `phx_error`. Returns how many views were
    /// ended.
    pub async fn reauthorize(&mut self, out: &mut Vec<String>) -> usize {
        let topics = self.channels.topics();
        let mut ended = 0;
        for topic in topics {
            let Some(channel) = self.channels.get_mut(&topic) else { continue };
            let reauthorized = self.app.reauthorize(&mut channel.joined).await;
            channel.joined.rendered = Value::Null;
            if reauthorized.is_err() {
                ended += 1;
            }
            match reauthorized {
                Ok(()) => {}
                Err(JoinError::Redirect(redirect)) => redirect_out(&mut self.channels, &topic, redirect, out),
                Err(_) => {
                    if let Some(channel) = self.channels.remove(&topic) {
                        let join_ref = channel.join_ref.as_deref();
                        out.push(wire::frame(
                            join_ref,
                            join_ref,
                            &topic,
                            "phx_error",
                            json!({"reason": "unauthorized"}),
                        ));
                    }
                }
            }
        }
        ended
    }
}

/// Sends a view's redirect and ends its channel: the client navigates away.
fn redirect_out(channels: &mut Channels, topic: &str, redirect: Redirect, out: &mut Vec<String>) {
    let Some(channel) = channels.remove(topic) else { return };
    let join_ref = channel.join_ref.as_deref();
    let (event, payload) = match redirect {
        Redirect::Redirect { to } => ("redirect", json!({"to": to})),
        Redirect::LiveRedirect { to } => ("live_redirect", json!({"to": to, "kind": "push"})),
    };
    out.push(wire::push(join_ref, topic, event, payload));
    out.push(wire::close(join_ref, topic));
}
