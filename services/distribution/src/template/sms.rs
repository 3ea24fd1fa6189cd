//! How an SMS is carried: GSM-7 when every character is in the GSM 03.38 alphabet, UCS-2
//! otherwise, and how many segments that takes.

use throughline_proto::distribution::v1::{SmsDetails, SmsEncoding};

/// The GSM 03.38 basic character set (one septet each). The escape code itself is not
/// listed: it is never text.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: an escape septet plus one, so two each.
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

const GSM7_SINGLE: u32 = 160;
const GSM7_MULTI: u32 = 153;
const UCS2_SINGLE: u32 = 70;
const UCS2_MULTI: u32 = 67;

/// Septets `c` takes in GSM-7, or `None` outside the alphabet.
fn gsm7_width(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Encoding, length in the encoding's units and segment count of `body`.
///
/// Segments are filled the way handsets and gateways split: an escape pair (GSM-7) or a
/// surrogate pair (UCS-2) is never split across two segments, so a long message may take one
/// more segment than its length divided by 153 or 67. An empty body still takes one segment.
pub fn sms_details(body: &str) -> SmsDetails {
    let gsm7: Option<Vec<u32>> = body.chars().map(gsm7_width).collect();
    let (encoding, widths, single, multi) = match gsm7 {
        Some(widths) => (SmsEncoding::Gsm7, widths, GSM7_SINGLE, GSM7_MULTI),
        None => (
            SmsEncoding::Ucs2,
            body.chars().map(|c| c.len_utf16() as u32).collect(),
            UCS2_SINGLE,
            UCS2_MULTI,
        ),
    };
    let length: u32 = widths.iter().sum();
    let segments: u32 = if length <= single {
        1
    } else {
        let mut segments = 1;
        let mut used = 0;
        for width in widths {
            if used + width > multi {
                segments += 1;
                used = 0;
            }
            used += width;
        }
        segments
    };
    SmsDetails {
        encoding: encoding as i32,
        segment_count: i32::try_from(segments).unwrap_or(i32::MAX),
        character_count: i32::try_from(length).unwrap_or(i32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(body: &str) -> (SmsEncoding, i32, i32) {
        let d = sms_details(body);
        (d.encoding(), d.character_count, d.segment_count)
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(details(&"a".repeat(160)), (SmsEncoding::Gsm7, 160, 1));
        assert_eq!(details(&"a".repeat(161)), (SmsEncoding::Gsm7, 161, 2));
        assert_eq!(details(&"a".repeat(306)), (SmsEncoding::Gsm7, 306, 2));
        assert_eq!(details(&"a".repeat(307)), (SmsEncoding::Gsm7, 307, 3));
        assert_eq!(details(""), (SmsEncoding::Gsm7, 0, 1));
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(details(&"é".repeat(70)), (SmsEncoding::Gsm7, 70, 1));
        assert_eq!(details(&"ж".repeat(70)), (SmsEncoding::Ucs2, 70, 1));
        assert_eq!(details(&"ж".repeat(71)), (SmsEncoding::Ucs2, 71, 2));
        assert_eq!(details(&"ж".repeat(134)), (SmsEncoding::Ucs2, 134, 2));
        assert_eq!(details(&"ж".repeat(135)), (SmsEncoding::Ucs2, 135, 3));
        // One character outside GSM-7 turns the whole message to UCS-2.
        let mixed = format!("{}ç", "a".repeat(69));
        assert_eq!(details(&mixed), (SmsEncoding::Ucs2, 70, 1));
    }

    #[test]
    fn emoji_count_in_utf16_units() {
        assert_eq!(details("🙂"), (SmsEncoding::Ucs2, 2, 1));
        assert_eq!(details(&"🙂".repeat(35)), (SmsEncoding::Ucs2, 70, 1));
        assert_eq!(details(&"🙂".repeat(36)), (SmsEncoding::Ucs2, 72, 2));
        // A segment holds 33 surrogate pairs (66 of its 67 units): 134 units take three.
        assert_eq!(details(&"🙂".repeat(67)), (SmsEncoding::Ucs2, 134, 3));
    }

    #[test]
    fn extension_characters_count_two() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            assert_eq!(details(&c.to_string()), (SmsEncoding::Gsm7, 2, 1), "{c:?}");
        }
        assert_eq!(details(&"€".repeat(80)), (SmsEncoding::Gsm7, 160, 1));
        assert_eq!(
            details(&format!("{}a", "€".repeat(80))),
            (SmsEncoding::Gsm7, 161, 2)
        );
        // 152 septets then an escape pair: the pair moves whole to the second segment.
        let body = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(details(&body), (SmsEncoding::Gsm7, 164, 2));
        let body = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(details(&body), (SmsEncoding::Gsm7, 306, 3));
    }

    #[test]
    fn basic_set_is_one_septet() {
        assert_eq!(details("Ça coûte 5 £ @ Åse"), (SmsEncoding::Ucs2, 18, 1));
        assert_eq!(
            details("Ça coute 5 £ @ Åse ¿¡ÑÜß"),
            (SmsEncoding::Gsm7, 24, 1)
        );
    }
}
