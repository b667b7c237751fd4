//! OSDP check characters: CRC-16/AUG-CCITT (poly 0x1021, init 0x1D0F, no reflection, no final
//! xor, stored little-endian) and the 8-bit checksum of the older mode.

/// CRC-16/AUG-CCITT over `data` (SOM through the last byte before the CRC, mark excluded).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0x1d0f;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The 8-bit checksum: the two's complement of the byte sum, so that all bytes including the
/// checksum add up to zero (mod 256).
pub fn checksum8(data: &[u8]) -> u8 {
    data.iter()
        .fold(0u8, |acc, &b| acc.wrapping_add(b))
        .wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_aug_ccitt_check_value() {
        assert_eq!(crc16(b"123456789"), 0xe5cc);
    }

    #[test]
    fn checksum8_makes_the_frame_sum_to_zero() {
        let data = [0x53, 0x65, 0x08, 0x00, 0x00, 0x60];
        let c = checksum8(&data);
        let sum = data.iter().fold(c, |a, &b| a.wrapping_add(b));
        assert_eq!(sum, 0);
    }
}
