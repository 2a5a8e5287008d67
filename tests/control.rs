//! Control messages: genuine ones decode to what was sent whatever the
//! clocks say; forged, tampered, oversized and malformed ones are refused,
//! never acted on. (Replays are refused by the protocol, from log positions
//! and message ids: see `cluster_sim.rs`.)

use liveguard::cluster::control::{
    Command, ControlCodec, ControlMessage, ControlRejection, MAX_CONTROL_BYTES, MessageId, Revocation,
};
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
    message(Command::Revoke(Revocation::Disconnect(LiveSocketId::new("users_sessions:abc=").unwrap())))
}

#[test]
fn a_genuine_message_decodes_to_what_was_sent() {
    let codec = ControlCodec::new(&ring(1));
    let sent = disconnect();
    let wire = codec.encode(&sent, NOW).unwrap();
    let (received, signed_at) = codec.decode(wire.as_bytes(), NOW).unwrap();
    assert_eq!(received, sent);
    assert_eq!(signed_at, NOW);
}

#[test]
fn every_command_round_trips() {
    let codec = ControlCodec::new(&ring(1));
    let id = LiveSocketId::new("a b.c*>").unwrap();
    for command in [
        Command::Revoke(Revocation::Disconnect(id.clone())),
        Command::Revoke(Revocation::Reauthorize(id)),
        Command::Revoke(Revocation::RetireKey(KeyId(7))),
        Command::Heartbeat { applied: 42 },
        Command::Ack { to: MessageId([9; 16]), position: 42, connections: 3 },
    ] {
        let sent = message(command);
        let wire = codec.encode(&sent, NOW).unwrap();
        assert_eq!(codec.decode(wire.as_bytes(), NOW).unwrap().0, sent);
    }
}

#[test]
fn the_receivers_clock_does_not_decide_whether_a_revocation_is_obeyed() {
    // A revocation read back from the log after a long partition, or by a
    // node whose clock was stepped back, is as binding as a fresh one.
    let codec = ControlCodec::new(&ring(1));
    let sent = disconnect();
    let wire = codec.encode(&sent, NOW).unwrap();
    let a_day_later = NOW.saturating_add_millis(86_400_000);
    assert_eq!(codec.decode(wire.as_bytes(), a_day_later).unwrap().0, sent);
    let ahead = codec.encode(&sent, a_day_later).unwrap();
    assert_eq!(codec.decode(ahead.as_bytes(), NOW).unwrap().0, sent, "a clock behind the issuer's");
}

#[test]
fn a_message_from_a_publisher_without_the_key_is_refused() {
    let codec = ControlCodec::new(&ring(1));
    let forger = ControlCodec::new(&ring(2));
    let wire = forger.encode(&disconnect(), NOW).unwrap();
    assert_eq!(codec.decode(wire.as_bytes(), NOW), Err(ControlRejection::Invalid(Rejection::BadSignature)));
}

#[test]
fn a_token_of_another_purpose_is_not_a_control_message() {
    let codec = ControlCodec::new(&ring(1));
    let tokens = liveguard::token::SignedTokens::new(&ring(1), "user auth");
    let wire = tokens.sign(&disconnect(), NOW).unwrap();
    assert_eq!(codec.decode(wire.as_bytes(), NOW), Err(ControlRejection::Invalid(Rejection::BadSignature)));
}

#[test]
fn every_single_bit_flip_is_refused() {
    let codec = ControlCodec::new(&ring(1));
    let wire = codec.encode(&disconnect(), NOW).unwrap().into_bytes();
    for index in 0..wire.len() {
        for bit in 0..8 {
            let mut flipped = wire.clone();
            flipped[index] ^= 1 << bit;
            let result = codec.decode(&flipped, NOW);
            assert!(matches!(result, Err(ControlRejection::Invalid(_))), "byte {index} bit {bit}: {result:?}");
        }
    }
}

#[test]
fn an_oversized_message_is_refused_unread() {
    let codec = ControlCodec::new(&ring(1));
    let mut wire = codec.encode(&disconnect(), NOW).unwrap().into_bytes();
    wire.resize(MAX_CONTROL_BYTES + 1, b'A');
    assert_eq!(codec.decode(&wire, NOW), Err(ControlRejection::TooLarge));
    assert_eq!(codec.decode(&vec![b'a'; 10_000], NOW), Err(ControlRejection::TooLarge));
}

#[test]
fn malformed_input_is_refused_without_panicking() {
    let codec = ControlCodec::new(&ring(1));
    for garbage in [&b""[..], b"\xff\xfe", b"lg1s.1..", b"lg1s.1.AAAA.BBBB", b"{\"disconnect\":\"x\"}"] {
        assert!(matches!(codec.decode(garbage, NOW), Err(ControlRejection::Invalid(_))), "{garbage:?}");
    }
}
