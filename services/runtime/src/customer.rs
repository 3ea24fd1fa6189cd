//! Who a request is about. A caller names the customer by profile (`profiles/p1`) or by an
//! identifier (an email, a CRM id, a cookie id…). Services key what they store by a
//! [`CustomerKey`], a canonical text form of that reference, and resolve keys to profiles
//! through a [`ResolveProfiles`]: [`StoreAsGiven`] where the profile service is not deployed
//! (a profile reference is that profile, an identifier stays unresolved), or the binary's
//! resolver backed by the profile service's `ResolveIdentity`.

use std::fmt;

use futures::future::BoxFuture;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{CustomerRef, Identifier, IdentifierType};

use crate::{Error, FieldViolation};

const PROFILE_PREFIX: &str = "profiles/";
const MAX_VALUE_LEN: usize = 256;

/// A customer reference in canonical text form, the way the store keys it:
/// `profiles/{id}`, `email:{address}`, `phone:{number}`, `crm:{source}:{id}`,
/// `device:{source}:{id}`, `cookie:{source}:{id}`, `external:{source}:{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerKey(String);

impl CustomerKey {
    /// Reads and checks a reference; violations name fields under `field`.
    pub fn parse(customer: Option<&CustomerRef>, field: &str) -> Result<Self, Vec<FieldViolation>> {
        let invalid = |path: &str, description: &str| {
            vec![FieldViolation::new(format!("{field}{path}"), description)]
        };
        match customer.and_then(|c| c.customer.as_ref()) {
            None => Err(invalid("", "required: a profile or an identifier")),
            Some(Customer::Profile(name)) => match name.strip_prefix(PROFILE_PREFIX) {
                Some(id) if is_client_id(id) => Ok(Self(name.clone())),
                _ => Err(invalid(
                    ".profile",
                    "must be profiles/{profile} with an id of letters, digits, '-', '_' or '.'",
                )),
            },
            Some(Customer::Identifier(identifier)) => Self::from_identifier(identifier)
                .map_err(|(path, description)| invalid(&format!(".identifier{path}"), description)),
        }
    }

    fn from_identifier(identifier: &Identifier) -> Result<Self, (&'static str, &'static str)> {
        let value = identifier.value.trim();
        if value.is_empty() || value.len() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
            return Err((
                ".value",
                "required, at most 256 characters, no control characters",
            ));
        }
        let source = identifier.source.trim();
        if !source.is_empty() && !is_source(source) {
            return Err((
                ".source",
                "a short lower-case name: letters, digits, '-' or '_', at most 64 characters",
            ));
        }
        let kind = IdentifierType::try_from(identifier.r#type)
            .map_err(|_| (".type", "unknown identifier type"))?;
        let key = match kind {
            IdentifierType::Unspecified => return Err((".type", "required")),
            IdentifierType::Email => {
                if !value.contains('@') {
                    return Err((".value", "not an email address"));
                }
                format!("email:{}", value.to_lowercase())
            }
            IdentifierType::Phone => {
                let number: String = value
                    .chars()
                    .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
                    .collect();
                let digits = number.strip_prefix('+').unwrap_or(&number);
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err((".value", "not a phone number"));
                }
                format!("phone:{number}")
            }
            IdentifierType::CrmId | IdentifierType::ExternalId if source.is_empty() => {
                return Err((".source", "required for CRM and external ids"));
            }
            IdentifierType::CrmId => format!("crm:{source}:{value}"),
            IdentifierType::ExternalId => format!("external:{source}:{value}"),
            IdentifierType::DeviceId => format!("device:{source}:{value}"),
            IdentifierType::CookieId => format!("cookie:{source}:{value}"),
        };
        Ok(Self(key))
    }

    /// A key read back from the store.
    pub fn from_stored(key: String) -> Self {
        Self(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The profile this key names directly, if it is a profile reference.
    pub fn profile(&self) -> Option<&str> {
        self.0
            .starts_with(PROFILE_PREFIX)
            .then_some(self.0.as_str())
    }

    /// The reference this key was made from (identifiers in their normalised form).
    pub fn to_ref(&self) -> CustomerRef {
        let customer = if self.0.starts_with(PROFILE_PREFIX) {
            Customer::Profile(self.0.clone())
        } else {
            let (kind, rest) = self.0.split_once(':').unwrap_or(("", &self.0));
            let (r#type, source, value) = match kind {
                "email" => (IdentifierType::Email, "", rest),
                "phone" => (IdentifierType::Phone, "", rest),
                other => {
                    let (source, value) = rest.split_once(':').unwrap_or(("", rest));
                    let r#type = match other {
                        "crm" => IdentifierType::CrmId,
                        "device" => IdentifierType::DeviceId,
                        "cookie" => IdentifierType::CookieId,
                        "external" => IdentifierType::ExternalId,
                        _ => IdentifierType::Unspecified,
                    };
                    (r#type, source, value)
                }
            };
            Customer::Identifier(Identifier {
                r#type: r#type as i32,
                value: value.to_owned(),
                source: source.to_owned(),
            })
        };
        CustomerRef {
            customer: Some(customer),
        }
    }
}

impl fmt::Display for CustomerKey {
    /// Keys hold personal data (emails, phones): never log them; this is for the store only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id chosen by a client or a service, as profile ids are: letters, digits, `-`, `_`, `.`;
/// 1 to 128 characters.
pub fn is_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_source(source: &str) -> bool {
    source.len() <= 64
        && source
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// Resolves customer keys to profiles (`profiles/{id}`), `None` when a key is not known as a
/// profile. Called once per recorded batch with the batch's distinct keys.
pub trait ResolveProfiles: fmt::Debug + Send + Sync {
    fn resolve<'a>(
        &'a self,
        tenant: &'a str,
        keys: &'a [CustomerKey],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, Error>>;
}

/// The resolver while the profile service is not deployed: a profile reference is that
/// profile, an identifier is stored as given and not resolved.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreAsGiven;

impl ResolveProfiles for StoreAsGiven {
    fn resolve<'a>(
        &'a self,
        _tenant: &'a str,
        keys: &'a [CustomerKey],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, Error>> {
        let profiles = keys
            .iter()
            .map(|key| key.profile().map(str::to_owned))
            .collect();
        Box::pin(async move { Ok(profiles) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn identifier(r#type: IdentifierType, value: &str, source: &str) -> CustomerRef {
        CustomerRef {
            customer: Some(Customer::Identifier(Identifier {
                r#type: r#type as i32,
                value: value.into(),
                source: source.into(),
            })),
        }
    }

    #[test]
    fn keys_are_canonical_and_round_trip() {
        let email = CustomerKey::parse(
            Some(&identifier(IdentifierType::Email, " Ada@Example.COM ", "")),
            "customer",
        )
        .unwrap();
        assert_eq!(email.as_str(), "email:ada@example.com");
        let crm = CustomerKey::parse(
            Some(&identifier(IdentifierType::CrmId, "0031:x", "salesforce")),
            "customer",
        )
        .unwrap();
        assert_eq!(crm.as_str(), "crm:salesforce:0031:x");
        assert_eq!(
            CustomerKey::from_stored(crm.as_str().into()).to_ref(),
            identifier(IdentifierType::CrmId, "0031:x", "salesforce")
        );
        let phone = CustomerKey::parse(
            Some(&identifier(IdentifierType::Phone, "+44 (20) 7946-0018", "")),
            "c",
        )
        .unwrap();
        assert_eq!(phone.as_str(), "phone:+442079460018");
        let profile = CustomerRef {
            customer: Some(Customer::Profile("profiles/p1".into())),
        };
        let key = CustomerKey::parse(Some(&profile), "c").unwrap();
        assert_eq!(key.profile(), Some("profiles/p1"));
        assert_eq!(key.to_ref(), profile);
    }

    #[test]
    fn bad_references_name_their_field() {
        let field = |customer: Option<CustomerRef>| {
            CustomerKey::parse(customer.as_ref(), "request.customer").unwrap_err()[0]
                .field
                .clone()
        };
        assert_eq!(field(None), "request.customer");
        assert_eq!(
            field(Some(CustomerRef {
                customer: Some(Customer::Profile("p1".into()))
            })),
            "request.customer.profile"
        );
        assert_eq!(
            field(Some(identifier(IdentifierType::CrmId, "1", ""))),
            "request.customer.identifier.source"
        );
        assert_eq!(
            field(Some(identifier(IdentifierType::Email, "nobody", ""))),
            "request.customer.identifier.value"
        );
    }
}
