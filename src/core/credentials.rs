//! What a resident presents at a door: cards or fobs (for panels) and a keypad PIN (for
//! locks). Card bits and PINs are secrets: their Debug prints no digits, and audit entries
//! record only that something changed ([`Credentials::redacted`]).

use std::collections::BTreeSet;
use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::types::{Actor, Alert, ResidentId, Timestamp};
use super::world::{Transition, TxBuilder, World};
use super::CoreError;

/// A card or fob as the reader sees it: `bit_len` bits, most significant first, packed
/// into `ceil(bit_len / 8)` bytes with unused low bits of the last byte zero.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// How it was enrolled, for people: `h10301` (26-bit) or `raw`.
    pub format: String,
    pub bit_len: u16,
    #[serde(with = "hex_bytes")]
    pub bits: Vec<u8>,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Card({}, {} bits, ***)", self.format, self.bit_len)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("facility code must be 0-255")]
    Facility,
    #[error("card number must be 0-65535")]
    Number,
    #[error("bit_len must be 1-256")]
    BitLen,
    #[error("hex must be exactly ceil(bit_len/8) bytes of hex digits, unused low bits zero")]
    Hex,
}

impl Card {
    /// HID H10301: even parity, 8-bit facility code, 16-bit card number, odd parity.
    pub fn h10301(facility: u32, number: u32) -> Result<Card, CardError> {
        if facility > 0xFF {
            return Err(CardError::Facility);
        }
        if number > 0xFFFF {
            return Err(CardError::Number);
        }
        let payload = (facility << 16) | number; // 24 bits
        let even = (payload >> 12).count_ones() % 2; // first 12 bits: even parity
        let odd = 1 - (payload & 0xFFF).count_ones() % 2; // last 12 bits: odd parity
        let word = (even << 25) | (payload << 1) | odd; // 26 bits
        let packed = word << 6; // left-align in 32 bits
        Ok(Card {
            format: "h10301".into(),
            bit_len: 26,
            bits: packed.to_be_bytes().to_vec(),
        })
    }

    pub fn raw(bit_len: u16, hex: &str) -> Result<Card, CardError> {
        if bit_len == 0 || bit_len > 256 {
            return Err(CardError::BitLen);
        }
        let want = usize::from(bit_len).div_ceil(8);
        if hex.len() != want * 2 {
            return Err(CardError::Hex);
        }
        let bits = (0..want)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| CardError::Hex)?;
        let unused = want * 8 - usize::from(bit_len);
        if unused > 0 && bits[want - 1] & ((1u8 << unused) - 1) != 0 {
            return Err(CardError::Hex);
        }
        Ok(Card {
            format: "raw".into(),
            bit_len,
            bits,
        })
    }

    /// Same bits, whatever the enrolment format said.
    pub fn same_credential(&self, other: &Card) -> bool {
        self.bit_len == other.bit_len && self.bits == other.bits
    }
}

/// A keypad code: six digits 1-9. Debug and Display never show it; [`Pin::expose`] does,
/// for the lock writer and the one reply that reveals it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pin(String);

impl Pin {
    pub const LEN: usize = 6;

    /// A valid code, or `None`: six digits 1-9, not starting with "12" (Nuki reserves
    /// codes starting with 12).
    pub fn parse(s: &str) -> Option<Pin> {
        let ok = s.len() == Pin::LEN
            && s.bytes().all(|b| (b'1'..=b'9').contains(&b))
            && !s.starts_with("12");
        ok.then(|| Pin(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Numeric value, as the Nuki keypad-code commands carry it.
    pub fn value(&self) -> u32 {
        self.0.parse().expect("a Pin is six digits")
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(******)")
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

/// Pick a PIN not in `taken`. Random (the caller passes the OS CSPRNG in production), so a
/// code says nothing about its resident or its neighbours. `None` only if every code of the
/// 524,880 is taken.
pub fn allocate_pin(taken: impl Fn(&str) -> bool, rng: &mut impl Rng) -> Option<Pin> {
    for _ in 0..1000 {
        let s: String = (0..Pin::LEN)
            .map(|_| char::from(b'1' + rng.gen_range(0..9u8)))
            .collect();
        if let Some(p) = Pin::parse(&s) {
            if !taken(p.expose()) {
                return Some(p);
            }
        }
    }
    // A nearly full site: walk every code in order from a random start.
    let total = 9u32.pow(Pin::LEN as u32);
    let start = rng.gen_range(0..total);
    (0..total).find_map(|i| {
        let mut n = (start + i) % total;
        let mut s = [b'1'; Pin::LEN];
        for c in s.iter_mut().rev() {
            *c = b'1' + (n % 9) as u8;
            n /= 9;
        }
        let s = std::str::from_utf8(&s).expect("ascii digits");
        Pin::parse(s).filter(|p| !taken(p.expose()))
    })
}

/// Everything a resident can present.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub resident_id: ResidentId,
    #[serde(default)]
    pub cards: Vec<Card>,
    #[serde(default)]
    pub pin: Option<Pin>,
}

impl Credentials {
    /// What the audit log records: formats and counts, never bits or digits.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "resident_id": self.resident_id,
            "cards": self.cards.iter().map(|c| serde_json::json!({
                "format": c.format, "bit_len": c.bit_len,
            })).collect::<Vec<_>>(),
            "pin": self.pin.is_some(),
        })
    }
}

/// Enroll a card or fob for a resident. The same bits may not belong to two residents: a
/// card found on the floor must open one home, not two.
pub fn enroll_card(
    world: &World,
    resident_id: &str,
    card: Card,
    actor: Actor,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    if !world.residents.contains_key(resident_id) {
        return Err(CoreError::UnknownResident(resident_id.to_string()));
    }
    for (owner, c) in &world.credentials {
        if c.cards.iter().any(|k| k.same_credential(&card)) {
            return Err(if owner == resident_id {
                CoreError::CardAlreadyEnrolled
            } else {
                CoreError::CardTaken
            });
        }
    }
    let mut creds = world
        .credentials
        .get(resident_id)
        .cloned()
        .unwrap_or_else(|| Credentials {
            resident_id: resident_id.to_string(),
            ..Credentials::default()
        });
    creds.cards.push(card);
    let mut b = TxBuilder::new(world, actor, now);
    b.put_credentials(creds);
    Ok(b.finish())
}

/// Remove a card from a resident; the devices drop it at their next write.
pub fn remove_card(
    world: &World,
    resident_id: &str,
    card: &Card,
    actor: Actor,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    let Some(mut creds) = world.credentials.get(resident_id).cloned() else {
        return Err(CoreError::CardNotEnrolled);
    };
    let before = creds.cards.len();
    creds.cards.retain(|c| !c.same_credential(card));
    if creds.cards.len() == before {
        return Err(CoreError::CardNotEnrolled);
    }
    let mut b = TxBuilder::new(world, actor, now);
    b.put_credentials(creds);
    Ok(b.finish())
}

/// Give a PIN to every resident who has none yet, as they arrive from the PMS, so that a
/// decision never waits on it. A PIN opens nothing until its resident holds a key; codes
/// are never reused, not even a former resident's.
pub fn assign_missing_pins(world: &World, rng: &mut impl Rng, now: Timestamp) -> Transition {
    let missing: Vec<&ResidentId> = world
        .residents
        .keys()
        .filter(|id| world.credentials.get(*id).is_none_or(|c| c.pin.is_none()))
        .collect();
    let mut b = TxBuilder::new(world, Actor::System, now);
    if missing.is_empty() {
        return b.finish();
    }
    let mut taken: BTreeSet<String> = world
        .credentials
        .values()
        .filter_map(|c| c.pin.as_ref().map(|p| p.expose().to_string()))
        .collect();
    for resident_id in missing {
        let has = world
            .credentials
            .get(resident_id)
            .is_some_and(|c| c.pin.is_some());
        if has {
            continue;
        }
        let Some(pin) = allocate_pin(|p| taken.contains(p), rng) else {
            b.alert(Alert::PinsExhausted);
            break;
        };
        taken.insert(pin.expose().to_string());
        let mut creds = world
            .credentials
            .get(resident_id)
            .cloned()
            .unwrap_or_else(|| Credentials {
                resident_id: resident_id.clone(),
                ..Credentials::default()
            });
        creds.pin = Some(pin);
        b.put_credentials(creds);
    }
    b.finish()
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd-length hex"));
        }
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn h10301_packs_parity_facility_and_number() {
        // Facility 1, card 1: payload 0x010001. First 12 bits 0x010 (one 1: even parity 1),
        // last 12 bits 0x001 (one 1: odd parity 0).
        let c = Card::h10301(1, 1).unwrap();
        let word = u32::from_be_bytes(c.bits.clone().try_into().unwrap()) >> 6;
        assert_eq!(word, (1 << 25) | (0x010001 << 1));
        assert_eq!(c.bit_len, 26);
        assert!(Card::h10301(256, 1).is_err());
        assert!(Card::h10301(1, 65536).is_err());
    }

    #[test]
    fn raw_cards_need_exact_hex_with_zero_padding() {
        assert!(Card::raw(12, "abc0").is_ok());
        assert_eq!(Card::raw(12, "abc1"), Err(CardError::Hex));
        assert_eq!(Card::raw(12, "abc"), Err(CardError::Hex));
        assert_eq!(Card::raw(0, ""), Err(CardError::BitLen));
    }

    #[test]
    fn pins_are_six_digits_one_to_nine_never_starting_12() {
        assert!(Pin::parse("345678").is_some());
        assert!(Pin::parse("123456").is_none());
        assert!(Pin::parse("305678").is_none());
        assert!(Pin::parse("34567").is_none());
        assert_eq!(
            format!(
                "{:?} {}",
                Pin::parse("345678").unwrap(),
                Pin::parse("345678").unwrap()
            ),
            "Pin(******) ******"
        );
    }

    #[test]
    fn allocation_never_repeats_a_taken_code() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut taken: Vec<String> = Vec::new();
        for _ in 0..2000 {
            let set: BTreeSet<&str> = taken.iter().map(String::as_str).collect();
            let p = allocate_pin(|c| set.contains(c), &mut rng).unwrap();
            assert!(Pin::parse(p.expose()).is_some());
            assert!(!set.contains(p.expose()));
            taken.push(p.expose().to_string());
        }
    }

    #[test]
    fn allocation_finds_the_last_free_code() {
        // Every code but one taken: the ordered walk must find it.
        let mut all = Vec::new();
        let total = 9u32.pow(6);
        for n in 0..total {
            let mut m = n;
            let mut s = [b'1'; 6];
            for c in s.iter_mut().rev() {
                *c = b'1' + (m % 9) as u8;
                m /= 9;
            }
            all.push(String::from_utf8(s.to_vec()).unwrap());
        }
        let free = "987654";
        let taken: BTreeSet<&str> = all
            .iter()
            .map(String::as_str)
            .filter(|s| *s != free)
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(
            allocate_pin(|c| taken.contains(c), &mut rng)
                .unwrap()
                .expose(),
            free
        );
    }
}
