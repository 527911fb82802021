//! Control packet codec tables (RFC 5880 §4.1), checked both ways; one
//! row per §6.8.6 reception check that needs no session; property tests
//! (round trip, no panic on any input).

use bfd::counters::DiscardReason;
use bfd::packet::{ControlPacket, DecodeError, Diag, Flags, State};
use proptest::prelude::*;

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unhex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect()
}

/// (wire bytes, packet): encoded and decoded, each must give the other.
fn table() -> Vec<(&'static str, ControlPacket)> {
    let base = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        flags: Flags::default(),
        detect_mult: 3,
        my_discr: 0x0102_0304,
        your_discr: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
        auth_type: None,
    };
    vec![
        // A first packet: Down, nothing known of the peer, slow TX.
        (
            "20 40 03 18 01 02 03 04 00 00 00 00 00 0f 42 40 00 04 93 e0 00 00 00 00",
            base,
        ),
        // Up, with Poll, announcing 100 ms.
        (
            "20 e0 03 18 01 02 03 04 0a 0b 0c 0d 00 01 86 a0 00 01 86 a0 00 00 00 00",
            ControlPacket {
                state: State::Up,
                flags: Flags {
                    poll: true,
                    ..Flags::default()
                },
                your_discr: 0x0a0b_0c0d,
                desired_min_tx: 100_000,
                required_min_rx: 100_000,
                ..base
            },
        ),
        // Init with Final.
        (
            "20 90 05 18 01 02 03 04 0a 0b 0c 0d 00 0f 42 40 00 04 93 e0 00 00 00 00",
            ControlPacket {
                state: State::Init,
                flags: Flags {
                    final_: true,
                    ..Flags::default()
                },
                detect_mult: 5,
                your_discr: 0x0a0b_0c0d,
                ..base
            },
        ),
        // Down after Up: diag 1, detection time expired.
        (
            "21 40 03 18 01 02 03 04 00 00 00 00 00 0f 42 40 00 04 93 e0 00 00 00 00",
            ControlPacket {
                diag: Diag::ControlDetectionTimeExpired,
                ..base
            },
        ),
        // AdminDown, diag 7, C and D bits, echo interval.
        (
            "27 0a 01 18 01 02 03 04 00 00 00 00 00 0f 42 40 00 04 93 e0 00 00 c3 50",
            ControlPacket {
                diag: Diag::AdministrativelyDown,
                state: State::AdminDown,
                flags: Flags {
                    control_plane_independent: true,
                    demand: true,
                    ..Flags::default()
                },
                detect_mult: 1,
                required_min_echo_rx: 50_000,
                ..base
            },
        ),
        // A reserved diagnostic code survives.
        (
            "3f 40 03 18 01 02 03 04 00 00 00 00 00 0f 42 40 00 04 93 e0 00 00 00 00",
            ControlPacket {
                diag: Diag::Reserved(31),
                ..base
            },
        ),
    ]
}

#[test]
fn encode_and_decode_tables() {
    for (i, (wire, pkt)) in table().into_iter().enumerate() {
        let bytes = unhex(wire);
        assert_eq!(hex(&pkt.encode()), hex(&bytes), "row {i} encode");
        assert_eq!(ControlPacket::decode(&bytes), Ok(pkt), "row {i} decode");
    }
}

/// One row per §6.8.6 check that needs no session: (bytes, error).
#[test]
fn malformed_table() {
    let ok = "20 40 03 18 01 02 03 04 00 00 00 00 00 0f 42 40 00 04 93 e0 00 00 00 00";
    let rows: Vec<(String, DecodeError, DiscardReason)> = vec![
        (
            "20 40 03".into(),
            DecodeError::TooShort { len: 3 },
            DiscardReason::TooShort,
        ),
        (
            ok.replacen("20", "40", 1),
            DecodeError::BadVersion(2),
            DiscardReason::BadVersion,
        ),
        (
            ok.replacen("20", "00", 1),
            DecodeError::BadVersion(0),
            DiscardReason::BadVersion,
        ),
        (
            ok.replacen("03 18", "03 17", 1),
            DecodeError::BadLength {
                length: 23,
                auth: false,
            },
            DiscardReason::BadLength,
        ),
        // A bit: 26 bytes at least.
        (
            ok.replacen("20 40", "20 44", 1),
            DecodeError::BadLength {
                length: 24,
                auth: true,
            },
            DiscardReason::BadLength,
        ),
        // A bit, Auth Len running past Length.
        (
            format!("{} 01 09", ok.replacen("20 40 03 18", "20 44 03 1a", 1)),
            DecodeError::BadLength {
                length: 26,
                auth: true,
            },
            DiscardReason::BadLength,
        ),
        (
            ok.replacen("03 18", "03 1c", 1),
            DecodeError::LengthExceedsPayload {
                length: 28,
                payload: 24,
            },
            DiscardReason::LengthExceedsPayload,
        ),
        (
            ok[..ok.len() - 3].to_string(),
            DecodeError::LengthExceedsPayload {
                length: 24,
                payload: 23,
            },
            DiscardReason::LengthExceedsPayload,
        ),
        (
            ok.replacen("40 03", "40 00", 1),
            DecodeError::DetectMultZero,
            DiscardReason::DetectMultZero,
        ),
        (
            ok.replacen("20 40", "20 41", 1),
            DecodeError::Multipoint,
            DiscardReason::Multipoint,
        ),
        (
            ok.replacen("01 02 03 04", "00 00 00 00", 1),
            DecodeError::MyDiscriminatorZero,
            DiscardReason::MyDiscriminatorZero,
        ),
        (
            ok.replacen("20 40", "20 c0", 1),
            DecodeError::YourDiscriminatorZero(State::Up),
            DiscardReason::YourDiscriminatorZero,
        ),
        (
            ok.replacen("20 40", "20 80", 1),
            DecodeError::YourDiscriminatorZero(State::Init),
            DiscardReason::YourDiscriminatorZero,
        ),
    ];
    for (i, (wire, err, reason)) in rows.iter().enumerate() {
        let got = ControlPacket::decode(&unhex(wire));
        assert_eq!(got, Err(*err), "row {i}: {wire}");
        assert_eq!(err.reason(), *reason, "row {i}");
    }
    // Valid: Your Discriminator 0 in AdminDown; an authentication section
    // (kept as its type; the demux discards it); bytes past Length.
    let admin = ok.replacen("20 40", "20 00", 1);
    assert!(ControlPacket::decode(&unhex(&admin)).is_ok());
    let auth = format!(
        "{} 01 04 61 62",
        ok.replacen("20 40 03 18", "20 44 03 1c", 1)
    );
    assert_eq!(
        ControlPacket::decode(&unhex(&auth)).unwrap().auth_type,
        Some(1)
    );
    let trailing = format!("{ok} ff ff");
    assert!(ControlPacket::decode(&unhex(&trailing)).is_ok());
}

fn arb_state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_bits)
}

fn arb_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32, arb_state(), any::<[bool; 4]>(), 1u8..=255),
        (
            1u32..,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
    )
        .prop_map(|((diag, state, f, mult), (my, your, tx, rx, echo))| {
            let your = if matches!(state, State::Up | State::Init) && your == 0 {
                1
            } else {
                your
            };
            ControlPacket {
                diag: Diag::from_bits(diag),
                state,
                flags: Flags {
                    poll: f[0],
                    final_: f[1],
                    control_plane_independent: f[2],
                    auth: false,
                    demand: f[3],
                    multipoint: false,
                },
                detect_mult: mult,
                my_discr: my,
                your_discr: your,
                desired_min_tx: tx,
                required_min_rx: rx,
                required_min_echo_rx: echo,
                auth_type: None,
            }
        })
}

proptest! {
    #[test]
    fn round_trip(p in arb_packet()) {
        prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }

    /// The decode fuzz target, runnable on stable: any bytes give a
    /// packet or an error, never a panic, and a packet re-encodes to the
    /// same first 24 bytes (less the Length and A bit it drops).
    #[test]
    fn decode_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(p) = ControlPacket::decode(&bytes) {
            let again = p.encode();
            prop_assert_eq!(&again[4..24], &bytes[4..24]);
            prop_assert_eq!(again[0], bytes[0]);
            prop_assert_eq!(again[2], bytes[2]);
        }
    }
}
