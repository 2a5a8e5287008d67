//! Phoenix Channels V2 JSON frames: `[join_ref, ref, topic, event, payload]`.
//!
//! Decoding bounds the nesting on the text before parsing (the parser
//! recurses), and takes only the shape phoenix.js sends: refs are strings or
//! `null`, topic and event are strings, the payload is an object.

use alloc::string::String;
use core::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::app::text_depth;

/// One client message.
#[derive(Clone, PartialEq, Debug)]
pub struct Message {
    /// The join this message belongs to (the ref of its `phx_join`).
    pub join_ref: Option<String>,
    /// The client's reference for the reply.
    pub msg_ref: Option<String>,
    /// The channel topic, e.g. `lv:phx-…` or `phoenix`.
    pub topic: String,
    /// The event, e.g. `phx_join`, `event`, `heartbeat`.
    pub event: String,
    /// The payload object.
    pub payload: Value,
}

/// Why a text frame is not a V2 message. The connection that sent it is
/// closed: there is no ref to answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// Not JSON text.
    NotJson,
    /// Nested deeper than the limit.
    TooDeep,
    /// JSON, but not `[join_ref, ref, topic, event, {payload}]`.
    WrongShape,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotJson => "frame is not JSON",
            Self::TooDeep => "frame is nested too deeply",
            Self::WrongShape => "frame is not [join_ref, ref, topic, event, payload]",
        })
    }
}

impl core::error::Error for FrameError {}

/// Decodes a text frame whose arrays and objects nest at most `max_depth`
/// deep (the frame's own array counts). Elements after the fifth are
/// ignored, as Phoenix does.
pub fn decode(text: &str, max_depth: usize) -> Result<Message, FrameError> {
    if text_depth(text) > max_depth {
        return Err(FrameError::TooDeep);
    }
    let mut parser = serde_json::Deserializer::from_str(text);
    // Bounded by the scan above.
    parser.disable_recursion_limit();
    let value = Value::deserialize(&mut parser).map_err(|_| FrameError::NotJson)?;
    parser.end().map_err(|_| FrameError::NotJson)?;
    let Value::Array(items) = value else { return Err(FrameError::WrongShape) };
    let mut items = items.into_iter();
    let mut next = || items.next().ok_or(FrameError::WrongShape);
    let join_ref = reference(next()?)?;
    let msg_ref = reference(next()?)?;
    let (Value::String(topic), Value::String(event)) = (next()?, next()?) else {
        return Err(FrameError::WrongShape);
    };
    let payload = next()?;
    if !payload.is_object() {
        return Err(FrameError::WrongShape);
    }
    Ok(Message { join_ref, msg_ref, topic, event, payload })
}

fn reference(value: Value) -> Result<Option<String>, FrameError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        _ => Err(FrameError::WrongShape),
    }
}

/// `[join_ref, ref, topic, "phx_reply", {"status", "response"}]`.
pub fn reply(join_ref: Option<&str>, msg_ref: Option<&str>, topic: &str, ok: bool, response: Value) -> String {
    let status = if ok { "ok" } else { "error" };
    frame(join_ref, msg_ref, topic, "phx_reply", serde_json::json!({"status": status, "response": response}))
}

/// A server push on a joined channel: `[join_ref, null, topic, event, payload]`.
pub fn push(join_ref: Option<&str>, topic: &str, event: &str, payload: Value) -> String {
    frame(join_ref, None, topic, event, payload)
}

/// `phx_close` for a channel the server ends: its join ref is both refs.
pub fn close(join_ref: Option<&str>, topic: &str) -> String {
    frame(join_ref, join_ref, topic, "phx_close", Value::Object(serde_json::Map::new()))
}

/// Any frame; the helpers above are the usual shapes.
pub(crate) fn frame(join_ref: Option<&str>, msg_ref: Option<&str>, topic: &str, event: &str, payload: Value) -> String {
    // Serializing a `Value` with string keys cannot fail.
    serde_json::to_string(&(join_ref, msg_ref, topic, event, payload)).unwrap_or_default()
}
