//! Identifiers in the one form they are stored and compared in: emails trimmed and
//! lower-cased, phones in E.164, CRM and external ids scoped by their source system, device and
//! cookie ids as given (trimmed).

use phonenumber::Mode;
use throughline_proto::common::v1::{Identifier, IdentifierType};

use crate::error::Violations;

const MAX_VALUE: usize = 256;
const MAX_SOURCE: usize = 64;

/// A normalised identifier: `(kind, source, value)` is unique per tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: i32,
    /// The issuing system for CRM and external ids; empty for the others.
    pub source: String,
    pub value: String,
}

impl Key {
    pub fn kind(&self) -> IdentifierType {
        IdentifierType::try_from(self.kind).unwrap_or(IdentifierType::Unspecified)
    }

    pub fn to_proto(&self) -> Identifier {
        Identifier {
            r#type: self.kind,
            value: self.value.clone(),
            source: self.source.clone(),
        }
    }

    /// Cookie ids say nothing about who the customer is; every other kind does.
    pub fn is_known(&self) -> bool {
        self.kind() != IdentifierType::CookieId
    }

    pub fn is_crm(&self) -> bool {
        self.kind() == IdentifierType::CrmId
    }

    /// A stable text form for lock keys; never logged (it may be personal data).
    pub fn lock_text(&self) -> String {
        format!("{}\u{1f}{}\u{1f}{}", self.kind, self.source, self.value)
    }
}

/// Normalises `identifier`, or records why it is invalid under `field`.
pub fn normalise(identifier: &Identifier, field: &str, violations: &mut Violations) -> Option<Key> {
    let kind = IdentifierType::try_from(identifier.r#type).unwrap_or(IdentifierType::Unspecified);
    let value = identifier.value.trim();
    let result = match kind {
        IdentifierType::Unspecified => Err(("type", "must be set".to_owned())),
        IdentifierType::Email => email(value).map(|value| (String::new(), value)),
        IdentifierType::Phone => phone(value).map(|value| (String::new(), value)),
        IdentifierType::CrmId | IdentifierType::ExternalId => {
            source(&identifier.source).and_then(|source| plain(value).map(|value| (source, value)))
        }
        IdentifierType::DeviceId | IdentifierType::CookieId => {
            plain(value).map(|value| (String::new(), value))
        }
    };
    match result {
        Ok((source, value)) => Some(Key {
            kind: kind as i32,
            source,
            value,
        }),
        Err((part, description)) => {
            violations.add(format!("{field}.{part}"), description);
            None
        }
    }
}

type Checked<T> = Result<T, (&'static str, String)>;

/// The normalised form of an email address, or why it is not one.
pub fn email(raw: &str) -> Checked<String> {
    let invalid = |why: &str| Err(("value", format!("not an email address: {why}")));
    let value = raw.trim().to_lowercase();
    if value.is_empty() {
        return invalid("empty");
    }
    if value.len() > 254 {
        return invalid("longer than 254 characters");
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return invalid("no @");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return invalid("bad local part");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("contains spaces");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|label| {
            label.is_empty()
                || label.starts_with('-')
                || label.ends_with('-')
                || !label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || !c.is_ascii())
        })
    {
        return invalid("bad domain");
    }
    Ok(value)
}

/// The E.164 form of a phone number given in international form (`+33 6 12 34 56 78`,
/// `0033612345678`), or why it is not a valid number.
pub fn phone(raw: &str) -> Checked<String> {
    let value = raw.trim();
    let international = if let Some(rest) = value.strip_prefix("00") {
        format!("+{rest}")
    } else {
        value.to_owned()
    };
    if !international.starts_with('+') {
        return Err((
            "value",
            "not a phone number in international form (+ and country code)".to_owned(),
        ));
    }
    match phonenumber::parse(None, &international) {
        Ok(number) if number.is_valid() => Ok(number.format().mode(Mode::E164).to_string()),
        _ => Err(("value", "not a valid phone number".to_owned())),
    }
}

fn plain(value: &str) -> Checked<String> {
    if value.is_empty() {
        return Err(("value", "must not be empty".to_owned()));
    }
    if value.len() > MAX_VALUE {
        return Err(("value", format!("longer than {MAX_VALUE} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(("value", "contains control characters".to_owned()));
    }
    Ok(value.to_owned())
}

/// A source system's name: `salesforce`, also accepted as `crm:salesforce`.
fn source(raw: &str) -> Checked<String> {
    let value = raw.trim().to_lowercase();
    let value = value.strip_prefix("crm:").unwrap_or(&value).to_owned();
    if value.is_empty() {
        return Err((
            "source",
            "required for CRM and external ids: the issuing system".to_owned(),
        ));
    }
    if value.len() > MAX_SOURCE
        || !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
    {
        return Err((
            "source",
            format!("lower-case letters, digits, '-', '_' or '.', at most {MAX_SOURCE}"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            email("  Ada.Lovelace@Example.COM ").unwrap(),
            "ada.lovelace@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@ex..com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(phone("+33 6 12 34 56 78").unwrap(), "+33612345678");
        assert_eq!(phone("0033612345678").unwrap(), "+33612345678");
        assert_eq!(phone("+1 (650) 253-0000").unwrap(), "+16502530000");
        for bad in ["", "0612345678", "+33 12", "+999 123", "call me"] {
            assert!(phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crm_ids_need_their_source() {
        let mut violations = Violations::default();
        let key = normalise(
            &Identifier {
                r#type: IdentifierType::CrmId as i32,
                value: " 0031x ".into(),
                source: "crm:Salesforce".into(),
            },
            "id",
            &mut violations,
        )
        .unwrap();
        assert_eq!(
            (key.source.as_str(), key.value.as_str()),
            ("salesforce", "0031x")
        );
        let missing = normalise(
            &Identifier {
                r#type: IdentifierType::CrmId as i32,
                value: "1".into(),
                source: String::new(),
            },
            "id",
            &mut violations,
        );
        assert!(missing.is_none());
        assert!(!violations.is_empty());
    }
}
