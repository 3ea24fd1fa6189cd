//! What every API checks the same way: resource names (AIP-122), update masks (AIP-134) and
//! page sizes (AIP-158).

use throughline_proto::common::v1::Channel;

use crate::{Error, FieldViolation};

/// `{collection}/{id}` → `id`.
pub fn resource_id<'a>(name: &'a str, collection: &str, field: &str) -> Result<&'a str, Error> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| is_resource_id(id))
        .ok_or_else(|| Error::invalid(field, format!("must be {collection}/{{id}}")))
}

/// AIP-122 ids: lower-case letters, digits and hyphens, 1 to 63 characters (service-assigned
/// ids are UUIDs, which fit).
pub fn is_resource_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The fields an update request's `update_mask` names; `*` names every updatable field.
pub struct UpdateMask(Vec<String>);

impl UpdateMask {
    /// Checks `mask` against the fields that can be updated: it is required, and every path
    /// must be one of them (violations name `update_mask.paths[i]`).
    pub fn parse(mask: Option<prost_types::FieldMask>, updatable: &[&str]) -> Result<Self, Error> {
        let paths = mask.map(|mask| mask.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "is required: the fields to update",
            ));
        }
        let violations = paths
            .iter()
            .enumerate()
            .filter(|(_, path)| *path != "*" && !updatable.contains(&path.as_str()))
            .map(|(index, _)| {
                FieldViolation::new(
                    format!("update_mask.paths[{index}]"),
                    format!("not updatable; updatable: {}", updatable.join(", ")),
                )
            })
            .collect();
        Error::unless_valid(violations)?;
        Ok(Self(paths))
    }

    /// Whether the mask names `field`.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|path| path == "*" || path == field)
    }
}

/// Default 20, at most 1000 (larger sizes are reduced, as AIP-158 allows).
pub fn page_size(value: i32) -> Result<usize, Error> {
    match value {
        0 => Ok(20),
        size if size < 0 => Err(Error::invalid("page_size", "must not be negative")),
        size => Ok(usize::try_from(size.min(1000)).unwrap_or(1000)),
    }
}

/// Channels of a filter: each must be a known channel.
pub fn channels(values: &[i32], field: &str) -> Result<Vec<i32>, Error> {
    let violations: Vec<FieldViolation> = values
        .iter()
        .enumerate()
        .filter(
            |(_, value)| !matches!(Channel::try_from(**value), Ok(c) if c != Channel::Unspecified),
        )
        .map(|(index, value)| {
            FieldViolation::new(
                format!("{field}[{index}]"),
                format!("unknown channel {value}"),
            )
        })
        .collect();
    if violations.is_empty() {
        Ok(values.to_vec())
    } else {
        Err(Error::InvalidArgument(violations))
    }
}
