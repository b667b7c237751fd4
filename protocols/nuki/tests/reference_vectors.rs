//! Every value in `vectors/nuki-test-vectors.json` (a copy of shared/reference), byte for byte.

use leasegate_nuki::frame::{self, Framing, Reassembler};
use leasegate_nuki::{
    cmd, crc::crc16, AppIdentity, AppSecretKey, Command, IdType, KeypadCode, NukiDate, Pairing,
    PairingStep, PinWidth, Reply, SecurityPin, SharedKey, Status, TimeLimits, TimeOfDay, Weekdays,
};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/nuki-test-vectors.json")).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).unwrap()
}

fn h32(v: &Value) -> [u8; 32] {
    hx(v).try_into().unwrap()
}

fn h24(v: &Value) -> [u8; 24] {
    hx(v).try_into().unwrap()
}

fn official() -> Value {
    vectors()["official_example"].clone()
}

fn shared_key() -> SharedKey {
    SharedKey::from_bytes(h32(&official()["shared_key"]))
}

#[test]
fn the_app_public_key_is_the_x25519_base_point_multiple_of_its_secret() {
    let o = official();
    let sk = AppSecretKey::from_bytes(h32(&o["app_keypair"]["private_key"]));
    assert_eq!(sk.public_key(), h32(&o["app_keypair"]["public_key"]));
}

#[test]
fn the_shared_key_is_hsalsa20_of_the_x25519_result_as_in_the_doc() {
    let o = official();
    let sk = AppSecretKey::from_bytes(h32(&o["app_keypair"]["private_key"]));
    let key = SharedKey::derive(&sk, &h32(&o["lock_keypair"]["public_key"]));
    assert_eq!(key.expose(), &h32(&o["shared_key"]));
}

#[test]
fn the_shared_key_matches_what_crypto_box_derives() {
    use crypto_box::aead::Aead;
    let o = official();
    let sk = crypto_box::SecretKey::from_bytes(h32(&o["app_keypair"]["private_key"]));
    let pk = crypto_box::PublicKey::from_bytes(h32(&o["lock_keypair"]["public_key"]));
    let boxed = crypto_box::SalsaBox::new(&pk, &sk);
    let nonce = [7u8; 24];
    let sealed = boxed.encrypt((&nonce).into(), &b"probe"[..]).unwrap();
    // Our framing with the derived key must open what crypto_box sealed.
    let ours = frame::encode_encrypted(&shared_key(), &nonce, 1, 2, b"probe");
    let pdata_ct_len = sealed.len();
    assert_eq!(pdata_ct_len, 16 + 5);
    use crypto_secretbox::{KeyInit, XSalsa20Poly1305};
    let sb = XSalsa20Poly1305::new(shared_key().expose().into());
    assert_eq!(sb.decrypt((&nonce).into(), &sealed[..]).unwrap(), b"probe");
    assert!(ours.len() > 30);
}

#[test]
fn every_unencrypted_pairing_message_has_the_doc_crc_and_bytes() {
    for step in official()["pairing"]["steps"].as_array().unwrap() {
        let Some(msg) = step.get("message") else {
            continue;
        };
        let msg = hx(msg);
        let crc = hx(&step["crc"]);
        assert_eq!(crc16(&msg[..msg.len() - 2]).to_le_bytes().to_vec(), crc);
        let (decoded, used) = frame::decode_plain(&msg).unwrap();
        assert_eq!(used, msg.len());
        assert_eq!(frame::encode_plain(decoded.command, &decoded.payload), msg);
    }
}

#[test]
fn the_pairing_machine_writes_the_doc_messages_byte_for_byte() {
    let o = official();
    let steps = o["pairing"]["steps"].as_array().unwrap().clone();
    let sk = AppSecretKey::from_bytes(h32(&o["app_keypair"]["private_key"]));
    let identity = AppIdentity {
        id_type: IdType::App,
        app_id: 0,
        name: "Marc (Test)".into(),
    };
    let (mut p, first) = Pairing::start(sk, identity, h32(&steps[6]["nonce_na"]));
    assert_eq!(first, hx(&steps[0]["message"]));

    let feed = |p: &mut Pairing, bytes: Vec<u8>| {
        let (m, _) = frame::decode_plain(&bytes).unwrap();
        p.on_message(&m).unwrap()
    };
    let send = |s: PairingStep| match s {
        PairingStep::Send(b) => b,
        PairingStep::Done(_) => panic!("finished early"),
    };
    assert_eq!(
        send(feed(&mut p, hx(&steps[1]["message"]))),
        hx(&steps[2]["message"])
    );
    assert_eq!(
        send(feed(&mut p, hx(&steps[3]["message"]))),
        hx(&steps[4]["message"])
    );
    assert_eq!(
        send(feed(&mut p, hx(&steps[5]["message"]))),
        hx(&steps[6]["message"])
    );
    // Step 8: only auth id and nonce are published; authenticator and UUID are placeholders.
    let (c, payload) = Reply::AuthorizationId {
        authenticator: [0; 32],
        auth_id: 2,
        lock_uuid: [0x11; 16],
        nonce: h32(&steps[7]["nonce_nk"]),
    }
    .encode();
    assert_eq!(
        send(feed(&mut p, frame::encode_plain(c, &payload))),
        hx(&steps[8]["message"])
    );
    let (c, payload) = Reply::Status(Status::Complete).encode();
    match feed(&mut p, frame::encode_plain(c, &payload)) {
        PairingStep::Done(paired) => {
            assert_eq!(paired.auth_id, 2);
            assert_eq!(paired.shared_key.expose(), &h32(&o["shared_key"]));
            assert_eq!(paired.lock_uuid, [0x11; 16]);
        }
        PairingStep::Send(_) => panic!("expected Done"),
    }
}

#[test]
fn the_challenge_request_encrypts_to_the_doc_wire_bytes() {
    let v = &official()["perform_unlock"]["request_challenge"];
    let wire = frame::encode_encrypted(
        &shared_key(),
        &h24(&v["nonce"]),
        2,
        cmd::REQUEST_DATA,
        &cmd::CHALLENGE.to_le_bytes(),
    );
    assert_eq!(wire, hx(&v["wire"]));
    assert_eq!(wire[..30], hx(&v["adata"])[..]);
    assert_eq!(
        Command::RequestData(cmd::CHALLENGE).payload(),
        vec![0x04, 0x00]
    );
}

#[test]
fn the_challenge_indications_reassemble_and_decrypt_to_the_doc_nonce() {
    let v = &official()["perform_unlock"]["challenge_response"];
    let mut r = Reassembler::new(Framing::Encrypted);
    let parts = v["indications_corrected"].as_array().unwrap();
    for (i, part) in parts.iter().enumerate() {
        r.push(&hx(part));
        let got = r.next_message().unwrap();
        assert_eq!(got.is_some(), i == parts.len() - 1, "after indication {i}");
        if let Some(bytes) = got {
            assert_eq!(bytes, hx(&v["wire"]));
            let (auth, m, used) = frame::decode_encrypted(&shared_key(), &bytes).unwrap();
            assert_eq!((auth, used), (2, bytes.len()));
            assert_eq!(
                Reply::decode(m.command, &m.payload).unwrap(),
                Reply::Challenge(h32(&v["challenge_nonce"]))
            );
        }
    }
}

#[test]
fn the_published_challenge_with_the_doc_typo_does_not_decrypt() {
    let v = &official()["perform_unlock"]["challenge_response"];
    let mut bytes = hx(&v["wire"]);
    // Drop the byte the doc lost; the frame is then either short or fails authentication.
    bytes.remove(28 + 6);
    match frame::decode_encrypted(&shared_key(), &bytes) {
        Ok(_) => panic!("damaged message accepted"),
        Err(e) => assert!(matches!(
            e,
            frame::FrameError::Incomplete { .. } | frame::FrameError::Decrypt
        )),
    }
}

#[test]
fn the_lock_action_plaintext_has_the_doc_crc() {
    let v = &official()["perform_unlock"]["lock_action_pdata"];
    let p = hx(&v["pdata"]);
    assert_eq!(
        crc16(&p[..p.len() - 2]).to_le_bytes().to_vec(),
        hx(&v["crc"])
    );
}

fn pyn() -> Value {
    vectors()["pynukibt_vectors"].clone()
}

fn pin() -> SecurityPin {
    SecurityPin::new(1234, PinWidth::U16).unwrap()
}

#[test]
fn add_keypad_code_with_a_date_window_matches_pynukibt_byte_for_byte() {
    let v = pyn();
    let a = &v["add_keypad_code"];
    let limits = TimeLimits {
        from: NukiDate::new(2026, 12, 1, 0, 0, 0),
        until: NukiDate::new(2027, 5, 31, 23, 59, 59),
        weekdays: Weekdays::ALL,
        from_time: TimeOfDay::new(0, 0).unwrap(),
        until_time: TimeOfDay::new(0, 0).unwrap(),
    };
    let c = Command::AddKeypadCode {
        // The synthetic vector uses 123456, which a real keypad rejects (starts with "12").
        code: KeypadCode::from_raw(123456),
        name: "Apt 3B tenant".into(),
        limits,
        nonce: h32(&v["inputs"]["challenge_nonce"]),
        pin: pin(),
    };
    assert_eq!(c.payload(), hx(&a["payload"]));
    let wire = frame::encode_encrypted(
        &shared_key(),
        &h24(&v["inputs"]["nonce"]),
        2,
        c.id(),
        &c.payload(),
    );
    assert_eq!(wire, hx(&a["wire"]));
    let (_, m, _) = frame::decode_encrypted(&shared_key(), &wire).unwrap();
    assert_eq!(m.command, 0x0041);
}

#[test]
fn remove_keypad_code_matches_the_hand_laid_vector_byte_for_byte() {
    let v = pyn();
    let r = &v["remove_keypad_code"];
    let c = Command::RemoveKeypadCode {
        id: 7,
        nonce: h32(&v["inputs"]["challenge_nonce"]),
        pin: pin(),
    };
    assert_eq!(c.payload(), hx(&r["payload"]));
    let wire = frame::encode_encrypted(
        &shared_key(),
        &h24(&v["inputs"]["nonce"]),
        2,
        c.id(),
        &c.payload(),
    );
    assert_eq!(wire, hx(&r["wire"]));
    assert_eq!(wire, hx(&v["pynukibt_raw_output"]["remove_wire"]));
}

#[test]
fn request_keyturner_states_matches_the_third_party_vector() {
    let v = &vectors()["extra_vectors_third_party"]["request_keyturner_states"];
    let wire = frame::encode_encrypted(
        &shared_key(),
        &h24(&v["nonce"]),
        2,
        cmd::REQUEST_DATA,
        &Command::RequestData(cmd::KEYTURNER_STATES).payload(),
    );
    assert_eq!(wire, hx(&v["wire"]));
}

#[test]
fn the_third_party_keyturner_states_decode_to_state_time_and_battery_byte() {
    let v = &vectors()["extra_vectors_third_party"]["keyturner_states_response"];
    let (auth, m, _) = frame::decode_encrypted(&shared_key(), &hx(&v["wire"])).unwrap();
    assert_eq!(auth, 2);
    assert_eq!(m.payload, hx(&v["payload"]));
    match Reply::decode(m.command, &m.payload).unwrap() {
        Reply::KeyturnerStates(s) => {
            assert_eq!((s.nuki_state, s.lock_state, s.trigger), (2, 1, 0));
            assert_eq!(s.time, NukiDate::new(2016, 3, 7, 8, 15, 30).unwrap());
            assert_eq!(s.timezone_offset_minutes, 60);
            assert!(!s.battery_critical());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_published_error_code_round_trips_by_value_and_name() {
    let v = vectors();
    for group in ["general", "pairing", "keyturner"] {
        for (hexcode, name) in v["error_codes"][group].as_object().unwrap() {
            let b = u8::from_str_radix(hexcode.trim_start_matches("0x"), 16).unwrap();
            let code = leasegate_nuki::ErrorCode::from_u8(b);
            assert_eq!(code.name(), name.as_str().unwrap());
            assert_eq!(code.to_u8(), b);
        }
    }
}

#[test]
fn command_ids_match_the_published_table() {
    let v = vectors();
    let all = v["command_ids"]["all"].as_object().unwrap();
    let id = |name: &str| {
        all.iter()
            .find(|(_, n)| n.as_str() == Some(name))
            .map(|(k, _)| u16::from_str_radix(k.trim_start_matches("0x"), 16).unwrap())
            .unwrap()
    };
    assert_eq!(id("Add Keypad Code"), cmd::ADD_KEYPAD_CODE);
    assert_eq!(id("Update Keypad Code"), cmd::UPDATE_KEYPAD_CODE);
    assert_eq!(id("Remove Keypad Code"), cmd::REMOVE_KEYPAD_CODE);
    assert_eq!(id("Request Keypad Codes"), cmd::REQUEST_KEYPAD_CODES);
    assert_eq!(id("Keypad Code Count"), cmd::KEYPAD_CODE_COUNT);
    assert_eq!(id("Keypad Code"), cmd::KEYPAD_CODE);
    assert_eq!(id("Keypad Code ID"), cmd::KEYPAD_CODE_ID);
    assert_eq!(id("Remove User Authorization"), cmd::REMOVE_AUTHORIZATION);
    assert_eq!(
        id("Authorization Data (Invite)"),
        cmd::AUTHORIZATION_DATA_INVITE
    );
    assert_eq!(
        id("Authorization-ID (Invite)"),
        cmd::AUTHORIZATION_ID_INVITE
    );
    assert_eq!(id("Error Report"), cmd::ERROR_REPORT);
    assert_eq!(
        id("Authorization-ID Confirmation"),
        cmd::AUTHORIZATION_ID_CONFIRMATION
    );
}

#[test]
fn gatt_uuids_match_the_published_table() {
    let g = &vectors()["gatt"]["smart_lock_1_to_4"];
    assert_eq!(
        g["pairing_gdio_characteristic"],
        leasegate_nuki::gatt::PAIRING_GDIO
    );
    assert_eq!(
        g["keyturner_usdio_characteristic"],
        leasegate_nuki::gatt::KEYTURNER_USDIO
    );
    assert_eq!(g["pairing_service"], leasegate_nuki::gatt::PAIRING_SERVICE);
    assert_eq!(
        g["keyturner_service"],
        leasegate_nuki::gatt::KEYTURNER_SERVICE
    );
}

#[test]
fn allocated_keypad_codes_are_six_digits_one_to_nine_not_starting_with_12() {
    assert!(KeypadCode::new(123456).is_none());
    assert!(KeypadCode::new(193456).is_some());
    assert!(KeypadCode::new(213456).is_some());
    assert!(KeypadCode::new(103456).is_none());
    assert!(KeypadCode::new(99999).is_none());
    assert!(KeypadCode::new(1999999).is_none());
    assert_eq!(
        format!("{:?}", KeypadCode::new(213456).unwrap()),
        "KeypadCode(<redacted>)"
    );
}
