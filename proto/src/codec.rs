//! The protobuf codec of every Throughline service: prost's, except that a request that does
//! not parse is the caller's mistake and answers INVALID_ARGUMENT with a field violation.
//!
//! gRPC's own guidance (and tonic-prost) answer INTERNAL, which would tell a caller the server
//! failed and invite a retry of the same bytes. The codec serves clients too, where a response
//! that does not parse gets the same code: there it can only come from a broken peer.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec as TonicCodec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// Prefix of the Display of every `prost::DecodeError`.
const DECODE_PREFIX: &str = "failed to decode Protobuf message: ";

/// `tonic_prost::ProstCodec` with INVALID_ARGUMENT for undecodable messages.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> TonicCodec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ValidatingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ValidatingDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct ValidatingDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ValidatingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|error| invalid_message(&error.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// INVALID_ARGUMENT naming the field prost was reading, as far as its error says.
fn invalid_message(error: &str) -> Status {
    let detail = error.strip_prefix(DECODE_PREFIX).unwrap_or(error);
    let field = field_path(detail);
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(
        if field.is_empty() {
            "request"
        } else {
            field.as_str()
        },
        "the message is not valid protobuf for this method",
    );
    details.set_error_info(
        "INVALID_ARGUMENT",
        "throughline",
        std::collections::HashMap::new(),
    );
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("malformed request: {detail}"),
        details,
    )
}

/// prost writes the path as `Outer.field: Inner.field: reason`; keep the field names.
fn field_path(detail: &str) -> String {
    detail
        .split(": ")
        .filter(|segment| {
            !segment.contains(' ')
                && segment
                    .split_once('.')
                    .is_some_and(|(message, field)| !message.is_empty() && !field.is_empty())
        })
        .filter_map(|segment| segment.rsplit_once('.').map(|(_, field)| field))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_prost_was_reading() {
        assert_eq!(
            field_path("GetProfileRequest.name: invalid string value: data is not UTF-8 encoded"),
            "name"
        );
        assert_eq!(
            field_path(
                "CreateProfileRequest.profile: Profile.email: invalid wire type: Varint (expected LengthDelimited)"
            ),
            "profile.email"
        );
        assert_eq!(field_path("buffer underflow"), "");
    }

    #[test]
    fn answers_invalid_argument_with_a_violation() {
        let status = invalid_message(
            "failed to decode Protobuf message: GetProfileRequest.name: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "name");
    }
}
