//! The NATS backbone (feature `nats`): async-nats on tokio.

use std::boxed::Box;
use std::string::{String, ToString};
use std::time::Duration;
use std::vec::Vec;

use async_nats::{ConnectOptions, Event};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::backbone::{Backbone, BackboneError, BackboneStatus, Delivery, Interest};
use crate::live::BoxFuture;

/// A node's connection to a NATS cluster.
///
/// Connection events from async-nats drive [`Backbone::status`], so a node
/// notices when it is cut off from the broker and when it is back.
#[derive(Clone, Debug)]
pub struct Nats {
    client: async_nats::Client,
    status: watch::Sender<BackboneStatus>,
}

impl Nats {
    /// Connects to `url` with `options` (credentials, TLS, ...). A failed
    /// first connection (unreachable server, refused credentials) is an
    /// error; once connected, reconnection is retried forever with a backoff
    /// capped at one second, so a node whose server returns picks up within a
    /// second of it.
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Self, BackboneError> {
        let (status, _) = watch::channel(BackboneStatus::Connected);
        let events = status.clone();
        let client = options
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 50).min(1_000)))
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        Event::Connected => events.send_replace(BackboneStatus::Connected),
                        Event::Disconnected => events.send_replace(BackboneStatus::Disconnected),
                        _ => return,
                    };
                }
            })
            .connect(url)
            .await
            .map_err(|_| BackboneError::Unavailable)?;
        Ok(Self { client, status })
    }

    /// The underlying client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

/// Aborts the task that forwards a subscription's messages, which drops
/// (and so unsubscribes) the NATS subscriber.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Backbone for Nats {
    fn publish(
        &self,
        subject: String,
        reply: Option<String>,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), BackboneError>> {
        Box::pin(async move {
            let result = match reply {
                Some(reply) => self.client.publish_with_reply(subject, reply, payload.into()).await,
                None => self.client.publish(subject, payload.into()).await,
            };
            result.map_err(|_| BackboneError::Unavailable)
        })
    }

    fn subscribe_into(
        &self,
        subject: String,
        sink: mpsc::UnboundedSender<Delivery>,
    ) -> BoxFuture<'_, Result<Interest, BackboneError>> {
        Box::pin(async move {
            let mut subscriber = self.client.subscribe(subject).await.map_err(|_| BackboneError::Unavailable)?;
            let forward = tokio::spawn(async move {
                while let Some(message) = subscriber.next().await {
                    // Status messages (e.g. 503 "no responders" to a command
                    // published where no node holds the id) carry no payload
                    // of ours.
                    if message.status.is_some() {
                        continue;
                    }
                    let delivery = Delivery {
                        subject: message.subject.to_string(),
                        reply: message.reply.map(|reply| reply.to_string()),
                        payload: message.payload.to_vec(),
                    };
                    if sink.send(delivery).is_err() {
                        break;
                    }
                }
            });
            Ok(Interest::new(Box::new(AbortOnDrop(forward.abort_handle()))))
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BackboneError>> {
        Box::pin(async move { self.client.flush().await.map_err(|_| BackboneError::Unavailable) })
    }

    fn status(&self) -> watch::Receiver<BackboneStatus> {
        self.status.subscribe()
    }
}
