//! Control messages: accepted once when genuine; forged, replayed, stale,
//! future-dated and malformed messages are refused, never acted on.

use liveguard::cluster::control::{Command, ControlCodec, ControlMessage, ControlRejection, MessageId, ReplayGuard};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::socket_id::LiveSocketId;
use liveguard::token::Rejection;
use liveguard::{OsRandom, Timestamp};

const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

fn ring(byte: u8) -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new(vec![byte; 64]).unwrap())
}

fn message(command: Command) -> ControlMessage {
    ControlMessage { id: MessageId::random(&mut OsRandom).unwrap(), node: "node-a".into(), command }
}

fn disconnect() -> ControlMessage {
    message(Command::Disconnect(LiveSocketId::new("users_sessions:abc=").unwrap()))
}

#[test]
fn a_genuine_message_is_accepted_once() {
    let codec = ControlCodec::new(&ring(1), 30, 5_000);
    let mut guard = ReplayGuard::new();
    let sent = disconnect();
    let wire = codec.encode(&sent, NOW).unwrap();
    let accepted = codec.decode(wire.as_bytes(), NOW, &mut guard).unwrap();
    assert_eq!(accepted.message, sent);
    assert_eq!(accepted.issued_at, NOW);
    assert_eq!(codec.decode(wire.as_bytes(), NOW, &mut guard), Err(ControlRejection::Replayed));
    // Another node's guard has not seen it.
    assert!(codec.decode(wire.as_bytes(), NOW, &mut ReplayGuard::new()).is_ok());
}

#[test]
fn every_command_round_trips() {
    let codec = ControlCodec::new(&ring(1), 30, 5_000);
    let id = LiveSocketId::new("a b.c*>").unwrap();
    for command in [
        Command::Disconnect(id.clone()),
        Command::Reauthorize(id.clone()),
        Command::RetireKey(KeyId(7)),
        Command::Heartbeat,
        Command::Ack { to: MessageId([9; 16]), connections: 3 },
        Command::Probe(id),
    ] {
        let sent = message(command);
        let wire = codec.encode(&sent, NOW).unwrap();
        assert_eq!(codec.decode(wire.as_bytes(), NOW, &mut ReplayGuard::new()).unwrap().message, sent);
    }
}

#[test]
fn a_message_from_a_publisher_without_the_key_is_refused() {
    let codec = ControlCodec::new(&ring(1), 30, 5_000);
    let forger = ControlCodec::new(&ring(2), 30, 5_000);
    let wire = forger.encode(&disconnect(), NOW).unwrap();
    let refused = codec.decode(wire.as_bytes(), NOW, &mut ReplayGuard::new());
    assert_eq!(refused, Err(ControlRejection::Invalid(Rejection::BadSignature)));
}

#[test]
fn a_token_of_another_purpose_is_not_a_control_message() {
    let codec = ControlCodec::new(&ring(1), 30, 5_000);
    let tokens = liveguard::token::SignedTokens::new(&ring(1), "user auth");
    let wire = tokens.sign(&disconnect(), NOW).unwrap();
    let refused = codec.decode(wire.as_bytes(), NOW, &mut ReplayGuard::new());
    assert_eq!(refused, Err(ControlRejection::Invalid(Rejection::BadSignature)));
}

#[test]
fn every_single_bit_flip_is_refused() {
    let codec = ControlCodec::new(&ring(1), 30, 5_000);
    let wire = codec.encode(&disconnect(), NOW).unwrap().into_bytes();
    for index in 0..wire.len() {
        for bit in 0..8 {
            let mut flipped = wire.clone();
            flipped[index] ^= 1 << bit;
            let result = codec.decode(&flipped, NOW, &mut ReplayGuard::new());
            assert!(matches!(result, Err(ControlRejection::Invalid(_))), "byte {index} bit {bit}: {result:?}");
        }
    }
}

#[test]
fn stale_and_future_dated_messages_are_refused() {
    let codec = ControlCodec::new(&ring(1), 30, 5_000);
    let wire = codec.encode(&disconnect(), NOW).unwrap();
    let later = NOW.saturating_add_millis(30_000);
    assert!(codec.decode(wire.as_bytes(), later, &mut ReplayGuard::new()).is_ok(), "valid at the boundary");
    let stale = NOW.saturating_add_millis(30_001);
    assert_eq!(codec.decode(wire.as_bytes(), stale, &mut ReplayGuard::new()), Err(ControlRejection::Stale));
    let ahead = codec.encode(&disconnect(), NOW.saturating_add_millis(5_001)).unwrap();
    let refused = codec.decode(ahead.as_bytes(), NOW, &mut ReplayGuard::new());
    assert_eq!(refused, Err(ControlRejection::Invalid(Rejection::FutureDated)));
}

#[test]
fn malformed_input_is_refused_without_panicking() {
    let codec = ControlCodec::new(&ring(1), 30, 5_000);
    let long = vec![b'a'; 10_000];
    for garbage in [&b""[..], b"\xff\xfe", b"lg1s.1..", b"lg1s.1.AAAA.BBBB", b"{\"disconnect\":\"x\"}", &long] {
        assert!(matches!(codec.decode(garbage, NOW, &mut ReplayGuard::new()), Err(ControlRejection::Invalid(_))));
    }
}

#[test]
fn the_replay_guard_forgets_only_what_is_stale_anyway() {
    let mut guard = ReplayGuard::new();
    let (a, b) = (MessageId([1; 16]), MessageId([2; 16]));
    assert!(guard.admit(a, NOW.saturating_add_millis(10), NOW));
    assert!(!guard.admit(a, NOW.saturating_add_millis(10), NOW.saturating_add_millis(10)));
    assert!(guard.admit(b, NOW.saturating_add_millis(100), NOW.saturating_add_millis(11)));
    assert_eq!(guard.len(), 1, "a lapsed and was forgotten; b is remembered");
    assert!(!guard.admit(b, NOW.saturating_add_millis(100), NOW.saturating_add_millis(50)));
}
