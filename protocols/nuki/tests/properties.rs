//! Round trips and "never panics" properties for every decoder.

use leasegate_nuki::frame::{self, FrameError, Framing, Reassembler};
use leasegate_nuki::{
    cmd, ErrorCode, ErrorReport, KeypadCode, KeypadCodeEntry, KeyturnerStates, NukiDate, Reply,
    SharedKey, Status, TimeLimits, TimeOfDay, Weekdays,
};
use proptest::prelude::*;

fn date() -> impl Strategy<Value = NukiDate> {
    (2000u16..2100, 1u8..13, 1u8..29, 0u8..24, 0u8..60, 0u8..60)
        .prop_map(|(y, mo, d, h, mi, s)| NukiDate::new(y, mo, d, h, mi, s).unwrap())
}

fn limits() -> impl Strategy<Value = TimeLimits> {
    (
        proptest::option::of(date()),
        proptest::option::of(date()),
        0u8..0x80,
        (0u8..24, 0u8..60),
        (0u8..24, 0u8..60),
    )
        .prop_map(|(from, until, w, a, b)| TimeLimits {
            from,
            until,
            weekdays: Weekdays(w),
            from_time: TimeOfDay::new(a.0, a.1).unwrap(),
            until_time: TimeOfDay::new(b.0, b.1).unwrap(),
        })
}

fn name(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 éü]{{0,{max}}}"))
        .unwrap()
        .prop_filter("fits", move |s| s.len() <= max)
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(Reply::PublicKey),
        any::<[u8; 32]>().prop_map(Reply::Challenge),
        (
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<[u8; 16]>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(a, id, u, n)| Reply::AuthorizationId {
                authenticator: a,
                auth_id: id,
                lock_uuid: u,
                nonce: n
            }),
        prop_oneof![Just(Status::Complete), Just(Status::Accepted)].prop_map(Reply::Status),
        (any::<u8>(), any::<u16>()).prop_map(|(c, command)| Reply::Error(ErrorReport {
            code: ErrorCode::from_u8(c),
            command
        })),
        any::<u16>().prop_map(Reply::KeypadCodeId),
        any::<u16>().prop_map(Reply::KeypadCodeCount),
        (
            any::<u16>(),
            any::<u32>(),
            name(20),
            any::<bool>(),
            date(),
            date(),
            any::<u16>(),
            limits()
        )
            .prop_map(
                |(id, code, name, enabled, created, last_active, lock_count, limits)| {
                    Reply::KeypadCode(KeypadCodeEntry {
                        id,
                        code: KeypadCode::from_raw(code),
                        name,
                        enabled,
                        created,
                        last_active,
                        lock_count,
                        limits,
                    })
                }
            ),
        any::<u32>().prop_map(Reply::AuthorizationIdInvite),
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            date(),
            any::<i16>(),
            any::<u8>()
        )
            .prop_map(
                |(n, l, t, time, tz, b)| Reply::KeyturnerStates(KeyturnerStates {
                    nuki_state: n,
                    lock_state: l,
                    trigger: t,
                    time,
                    timezone_offset_minutes: tz,
                    battery_byte: b
                })
            ),
    ]
}

fn canonical_limits(l: TimeLimits) -> TimeLimits {
    let mut b = Vec::new();
    l.put(&mut b);
    TimeLimits::parse(&b.try_into().unwrap())
}

proptest! {
    #[test]
    fn replies_round_trip_through_encrypted_frames_in_any_chunking(
        r in reply(),
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 24]>(),
        auth in any::<u32>(),
        cuts in proptest::collection::vec(1usize..40, 1..20),
    ) {
        let key = SharedKey::from_bytes(key);
        let r = match r {
            Reply::KeypadCode(mut e) => { e.limits = canonical_limits(e.limits); Reply::KeypadCode(e) }
            other => other,
        };
        let (c, p) = r.encode();
        let wire = frame::encode_encrypted(&key, &nonce, auth, c, &p);
        let mut asm = Reassembler::new(Framing::Encrypted);
        let mut rest = &wire[..];
        let mut got = None;
        for n in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let n = (*n).min(rest.len());
            asm.push(&rest[..n]);
            rest = &rest[n..];
            if let Some(m) = asm.next_message().unwrap() {
                prop_assert!(rest.is_empty());
                got = Some(m);
            }
        }
        let got = got.expect("whole message");
        let (a, m, used) = frame::decode_encrypted(&key, &got).unwrap();
        prop_assert_eq!((a, used), (auth, wire.len()));
        prop_assert_eq!(Reply::decode(m.command, &m.payload).unwrap(), r);
    }

    #[test]
    fn every_truncation_of_an_encrypted_frame_is_incomplete_not_invalid(
        p in proptest::collection::vec(any::<u8>(), 0..100),
        key in any::<[u8; 32]>(),
    ) {
        let key = SharedKey::from_bytes(key);
        let wire = frame::encode_encrypted(&key, &[1; 24], 9, 0x41, &p);
        for cut in 0..wire.len() {
            let e = frame::decode_encrypted(&key, &wire[..cut]).unwrap_err();
            prop_assert!(matches!(e, FrameError::Incomplete { .. }), "{:?} at {}", e, cut);
        }
    }

    #[test]
    fn any_flipped_bit_in_an_encrypted_frame_is_rejected(
        p in proptest::collection::vec(any::<u8>(), 0..60),
        bit in any::<prop::sample::Index>(),
    ) {
        let key = SharedKey::from_bytes([3; 32]);
        let mut wire = frame::encode_encrypted(&key, &[1; 24], 9, 0x41, &p);
        let i = bit.index(wire.len() * 8);
        wire[i / 8] ^= 1 << (i % 8);
        prop_assert!(frame::decode_encrypted(&key, &wire).is_err());
    }

    #[test]
    fn plain_frames_round_trip_and_any_flipped_payload_bit_fails_the_crc(
        which in 0usize..8,
        seed in any::<[u8; 32]>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let ids = [cmd::REQUEST_DATA, cmd::PUBLIC_KEY, cmd::CHALLENGE, cmd::AUTHORIZATION_AUTHENTICATOR,
                   cmd::AUTHORIZATION_DATA, cmd::AUTHORIZATION_ID, cmd::STATUS, cmd::ERROR_REPORT];
        let c = ids[which];
        let len = frame::plain_payload_len(c).unwrap();
        let payload: Vec<u8> = seed.iter().cycle().take(len).copied().collect();
        let wire = frame::encode_plain(c, &payload);
        let (m, used) = frame::decode_plain(&wire).unwrap();
        prop_assert_eq!((m.command, m.payload, used), (c, payload, wire.len()));
        let mut bad = wire.clone();
        let i = 16 + bit.index((bad.len() - 2) * 8);
        bad[i / 8] ^= 1 << (i % 8);
        prop_assert!(frame::decode_plain(&bad).is_err());
    }

    #[test]
    fn time_limits_round_trip_after_one_encoding(l in limits()) {
        let once = canonical_limits(l);
        prop_assert_eq!(canonical_limits(once), once);
        if l.from.is_some() || l.until.is_some() { prop_assert_eq!(once, l); }
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), c in any::<u16>()) {
        let key = SharedKey::from_bytes([5; 32]);
        let _ = frame::decode_plain(&bytes);
        let _ = frame::decode_encrypted(&key, &bytes);
        let _ = Reply::decode(c, &bytes);
        let mut a = Reassembler::new(Framing::Plain);
        a.push(&bytes);
        while let Ok(Some(_)) = a.next_message() {}
        let mut a = Reassembler::new(Framing::Encrypted);
        a.push(&bytes);
        while let Ok(Some(_)) = a.next_message() {}
    }
}
