//! Channels V2 text frames from a client: `wire::decode` under several
//! depth limits, and whole frames fed to a `LiveConnection` with and without
//! a session, one after another as a connection would receive them.
#![no_main]

mod common;

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use liveguard::audit::NoAudit;
use liveguard::live::wire::{self, FrameError};
use liveguard::live::{
    AllowAll, BoxFuture, EventReply, Events, LiveApp, LiveConnection, LiveRouter, LiveView, MountError, Params, Socket,
};
use liveguard::session::Session;
use serde_json::{Value, json};

struct Counter;

impl LiveView for Counter {
    const NAME: &'static str = "Counter";

    fn render(&self, _: &Socket) -> Value {
        json!({})
    }

    fn events() -> Events<Self> {
        Events::new().on("inc", AllowAll, |_, _, _| Box::pin(async { EventReply::NoReply }))
    }
}

static APP: LazyLock<Arc<LiveApp>> = LazyLock::new(|| {
    let router = LiveRouter::builder().default_session(|s| s.public()).live("/", Counter).build().expect("a router");
    Arc::new(LiveApp::new(router, &common::main_ring(), Arc::new(NoAudit)))
});

/// The core's futures never wait on I/O: poll to completion here.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for depth in [0, 1, 2, 8, 64] {
        match wire::decode(&text, depth) {
            Ok(message) => {
                assert!(message.payload.is_object());
                // What decodes re-encodes to a frame that decodes the same.
                let again = serde_json::to_string(&(
                    &message.join_ref,
                    &message.msg_ref,
                    &message.topic,
                    &message.event,
                    &message.payload,
                ))
                .expect("a Value serializes");
                assert_eq!(wire::decode(&again, depth).as_ref(), Ok(&message));
            }
            Err(FrameError::TooDeep) => assert!(text.matches(['[', '{']).count() > depth),
            Err(_) => {}
        }
    }
    // Frames split on newlines, through one connection with a session and
    // one without: every frame is answered or refused, never a panic.
    let mut session = Session::new();
    session.put("user_token", "t").expect("strings encode");
    for session in [Some(session), None] {
        let mut conn = LiveConnection::new(APP.clone(), session, 4);
        let mut out = Vec::new();
        for frame in text.split('\n') {
            let before = out.len();
            match block_on(conn.receive(frame, common::NOW, &mut out)) {
                Ok(()) => assert!(conn.channels() <= 4),
                Err(_) => assert_eq!(out.len(), before, "a refused frame is not answered"),
            }
        }
        for frame in &out {
            assert!(wire::decode(frame, 128).is_ok(), "the server sent a frame it would not accept: {frame}");
        }
    }
});
