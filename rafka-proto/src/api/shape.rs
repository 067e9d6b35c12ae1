//! Structural pre-check of a request body, run before kafka-protocol decodes
//! it.
//!
//! Why: kafka-protocol 0.18 sizes `Vec::with_capacity` straight from a
//! declared array length (`Array`: i32 up to 2^31-1, `CompactArray`: varint
//! up to 2^32-1) before reading a single element. Eight hostile bytes can
//! ask for hundreds of GiB, and an allocation failure aborts the process
//! (it is not a panic, so `catch_unwind` cannot help). This walker reads the
//! body with the request's shape (field kinds per version, from the Kafka
//! message specs) and refuses any array whose declared count times the
//! minimum wire size of one element exceeds the bytes left, so what the
//! decoder then pre-allocates is bounded by the body size.
//!
//! It mirrors the decoder exactly where positions matter: it is stricter on
//! varints (see [`WireReader::uvarint`]) and requires a known tagged field's
//! content to fill exactly its declared size, because kafka-protocol reads
//! known tagged fields from the stream ignoring that size. It also caps the
//! number of tagged fields per struct ([`TAGGED_FIELDS_PER_STRUCT_MAX`]): the
//! decoder keeps unknown ones in a map at ~20x their wire size.

use thiserror::Error;

use crate::header::{WireError, WireReader};

/// Most tagged fields accepted in one struct. Kafka defines at most a
/// handful per struct; clients send 0-2.
pub const TAGGED_FIELDS_PER_STRUCT_MAX: u32 = 64;

/// The newest version a field may have when it has not been removed.
pub(crate) const LATEST: i16 = i16::MAX;

/// What a field is on the wire. Strings and bytes may be null; the decoder
/// refuses nulls where the field is not nullable, which costs no allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Fixed width: int8/boolean 1, int16 2, int32 4, int64 8, uuid 16.
    Fixed(u8),
    /// STRING (i16 length) or COMPACT_STRING in flexible versions.
    Str,
    /// BYTES (i32 length) or COMPACT_BYTES in flexible versions.
    Bytes,
    /// Array of primitives.
    Array(Elem),
    /// Array of structs.
    StructArray(&'static Shape),
    /// A struct inline (only as a tagged field here).
    Struct(&'static Shape),
    /// A nullable struct: an int8 presence marker (1: the struct follows;
    /// kafka-protocol reads any other value as null), then the struct.
    NullableStruct(&'static Shape),
}

/// Element of an array of primitives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Elem {
    Fixed(u8),
    Str,
}

/// A field present in versions `min..=max`.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) min: i16,
    pub(crate) max: i16,
    pub(crate) kind: Kind,
}

/// A tagged field the decoder knows (reads in place, ignoring its size).
#[derive(Debug)]
pub(crate) struct Tagged {
    pub(crate) tag: u32,
    pub(crate) min: i16,
    pub(crate) kind: Kind,
}

/// A message or nested struct: its fields in wire order.
#[derive(Debug)]
pub(crate) struct Shape {
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
    pub(crate) tagged: &'static [Tagged],
}

impl Field {
    fn in_version(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// Why a request body was refused before decoding.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ShapeError {
    #[error("body ends inside {shape} at byte {offset}: {needed_bytes} more bytes needed")]
    Truncated {
        shape: &'static str,
        offset: usize,
        needed_bytes: usize,
    },
    #[error("bad unsigned varint in {shape} at byte {offset}")]
    BadVarint { shape: &'static str, offset: usize },
    #[error("negative length {length} in {shape} at byte {offset}")]
    NegativeLength {
        shape: &'static str,
        offset: usize,
        length: i32,
    },
    #[error(
        "array in {shape} at byte {offset} declares {count} elements of at least \
         {element_bytes_min} bytes but only {remaining_bytes} bytes remain"
    )]
    ArrayBeyondBody {
        shape: &'static str,
        offset: usize,
        count: u32,
        element_bytes_min: usize,
        remaining_bytes: usize,
    },
    #[error("{count} tagged fields in {shape} at byte {offset} exceed the limit")]
    TooManyTaggedFields {
        shape: &'static str,
        offset: usize,
        count: u32,
    },
    #[error(
        "tagged field {tag} in {shape} at byte {offset} declares {size_bytes} bytes \
         but its content takes {content_bytes}"
    )]
    TaggedFieldSizeMismatch {
        shape: &'static str,
        offset: usize,
        tag: u32,
        size_bytes: u32,
        content_bytes: usize,
    },
}

/// Walks `body` as a `shape` request of `version`; returns the bytes the
/// request takes (trailing bytes are left to the caller).
pub(crate) fn check(
    shape: &'static Shape,
    body: &[u8],
    version: i16,
    flexible: bool,
) -> Result<usize, ShapeError> {
    let mut walker = Walker {
        reader: WireReader::new(body),
        version,
        flexible,
    };
    walker.walk_struct(shape)?;
    Ok(walker.reader.position())
}

struct Walker<'a> {
    reader: WireReader<'a>,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn walk_struct(&mut self, shape: &'static Shape) -> Result<(), ShapeError> {
        // Runs of fixed-width fields are skipped with one bounds check.
        let mut fixed_bytes = 0;
        for field in shape.fields {
            if !field.in_version(self.version) {
                continue;
            }
            if let Kind::Fixed(width) = field.kind {
                fixed_bytes += usize::from(width);
                continue;
            }
            self.skip(shape, fixed_bytes)?;
            fixed_bytes = 0;
            self.walk_kind(shape, field.kind)?;
        }
        self.skip(shape, fixed_bytes)?;
        if self.flexible {
            self.walk_tagged_fields(shape)?;
        }
        Ok(())
    }

    fn walk_kind(&mut self, shape: &'static Shape, kind: Kind) -> Result<(), ShapeError> {
        match kind {
            Kind::Fixed(width) => self.skip(shape, usize::from(width)),
            Kind::Str => self.walk_string(shape),
            Kind::Bytes => self.walk_bytes(shape),
            Kind::Array(Elem::Fixed(width)) => {
                let count = self.array_count(shape, usize::from(width))?;
                self.skip(shape, count * usize::from(width))
            }
            Kind::Array(Elem::Str) => {
                let count = self.array_count(shape, self.string_bytes_min())?;
                (0..count).try_for_each(|_| self.walk_string(shape))
            }
            Kind::StructArray(element) => {
                let element_bytes_min = self.struct_bytes_min(element);
                let count = self.array_count(shape, element_bytes_min)?;
                (0..count).try_for_each(|_| self.walk_struct(element))
            }
            Kind::Struct(inner) => self.walk_struct(inner),
            Kind::NullableStruct(inner) => {
                let present = self.reader.take(1).map_err(|e| wire(shape, e))?;
                match present {
                    [1] => self.walk_struct(inner),
                    _ => Ok(()),
                }
            }
        }
    }

    fn walk_string(&mut self, shape: &'static Shape) -> Result<(), ShapeError> {
        let length_bytes = if self.flexible {
            self.compact_length(shape)?
        } else {
            let offset = self.reader.position();
            let length = self.reader.i16().map_err(|e| wire(shape, e))?;
            self.nullable_length(shape, offset, i32::from(length))?
        };
        self.skip(shape, length_bytes)
    }

    fn walk_bytes(&mut self, shape: &'static Shape) -> Result<(), ShapeError> {
        let length_bytes = if self.flexible {
            self.compact_length(shape)?
        } else {
            let offset = self.reader.position();
            let length = self.reader.i32().map_err(|e| wire(shape, e))?;
            self.nullable_length(shape, offset, length)?
        };
        self.skip(shape, length_bytes)
    }

    /// Reads an array's element count (null counts as 0 elements) and
    /// checks that that many elements can fit in the bytes left.
    fn array_count(
        &mut self,
        shape: &'static Shape,
        element_bytes_min: usize,
    ) -> Result<usize, ShapeError> {
        let offset = self.reader.position();
        let count = if self.flexible {
            self.compact_length(shape)?
        } else {
            let length = self.reader.i32().map_err(|e| wire(shape, e))?;
            self.nullable_length(shape, offset, length)?
        };
        // An element never takes 0 bytes here, and counting it as 1 keeps
        // the element loop bounded by the body size as well.
        let needed_bytes = (count as u64).saturating_mul(element_bytes_min.max(1) as u64);
        if needed_bytes > self.reader.remaining() as u64 {
            return Err(ShapeError::ArrayBeyondBody {
                shape: shape.name,
                offset,
                count: u32::try_from(count).unwrap_or(u32::MAX),
                element_bytes_min,
                remaining_bytes: self.reader.remaining(),
            });
        }
        Ok(count)
    }

    /// A non-compact length: -1 is null (no bytes follow), other negatives
    /// are refused.
    fn nullable_length(
        &self,
        shape: &'static Shape,
        offset: usize,
        length: i32,
    ) -> Result<usize, ShapeError> {
        match length {
            -1 => Ok(0),
            _ => usize::try_from(length).map_err(|_| ShapeError::NegativeLength {
                shape: shape.name,
                offset,
                length,
            }),
        }
    }

    /// A compact length: varint N is null for 0, N-1 bytes or elements
    /// otherwise.
    fn compact_length(&mut self, shape: &'static Shape) -> Result<usize, ShapeError> {
        let encoded = self.reader.uvarint().map_err(|e| wire(shape, e))?;
        Ok(encoded.saturating_sub(1) as usize)
    }

    fn walk_tagged_fields(&mut self, shape: &'static Shape) -> Result<(), ShapeError> {
        let offset = self.reader.position();
        let count = self.reader.uvarint().map_err(|e| wire(shape, e))?;
        if count > TAGGED_FIELDS_PER_STRUCT_MAX {
            return Err(ShapeError::TooManyTaggedFields {
                shape: shape.name,
                offset,
                count,
            });
        }
        (0..count).try_for_each(|_| self.walk_tagged_field(shape))
    }

    fn walk_tagged_field(&mut self, shape: &'static Shape) -> Result<(), ShapeError> {
        let offset = self.reader.position();
        let tag = self.reader.uvarint().map_err(|e| wire(shape, e))?;
        let size_bytes = self.reader.uvarint().map_err(|e| wire(shape, e))?;
        let known = shape
            .tagged
            .iter()
            .find(|known| known.tag == tag && known.min <= self.version);
        let Some(known) = known else {
            return self.skip(shape, size_bytes as usize);
        };
        let content_start = self.reader.position();
        self.walk_kind(shape, known.kind)?;
        let content_bytes = self.reader.position() - content_start;
        if content_bytes != size_bytes as usize {
            return Err(ShapeError::TaggedFieldSizeMismatch {
                shape: shape.name,
                offset,
                tag,
                size_bytes,
                content_bytes,
            });
        }
        Ok(())
    }

    fn skip(&mut self, shape: &'static Shape, length_bytes: usize) -> Result<(), ShapeError> {
        self.reader.skip(length_bytes).map_err(|e| wire(shape, e))
    }

    fn string_bytes_min(&self) -> usize {
        if self.flexible {
            1
        } else {
            2
        }
    }

    /// The fewest bytes one `shape` struct can take in this version: every
    /// field at its shortest (null or empty), plus the tagged field count.
    fn struct_bytes_min(&self, shape: &'static Shape) -> usize {
        let length_prefix_bytes = |non_compact_bytes| {
            if self.flexible {
                1
            } else {
                non_compact_bytes
            }
        };
        let fields_bytes: usize = shape
            .fields
            .iter()
            .filter(|field| field.in_version(self.version))
            .map(|field| match field.kind {
                Kind::Fixed(width) => usize::from(width),
                Kind::Str => length_prefix_bytes(2),
                Kind::Bytes | Kind::Array(_) | Kind::StructArray(_) => length_prefix_bytes(4),
                Kind::Struct(inner) => self.struct_bytes_min(inner),
                Kind::NullableStruct(_) => 1,
            })
            .sum();
        fields_bytes + usize::from(self.flexible)
    }
}

fn wire(shape: &'static Shape, error: WireError) -> ShapeError {
    match error {
        WireError::Truncated {
            offset,
            needed_bytes,
        } => ShapeError::Truncated {
            shape: shape.name,
            offset,
            needed_bytes,
        },
        WireError::BadVarint { offset } => ShapeError::BadVarint {
            shape: shape.name,
            offset,
        },
    }
}

/// The vocabulary the request and response shape tables are written in.
pub(crate) mod build {
    use super::Kind::{self, Array, Fixed};
    use super::{Elem, Field, Shape, LATEST};

    pub(crate) const I8: Kind = Fixed(1);
    pub(crate) const BOOL: Kind = Fixed(1);
    pub(crate) const I16: Kind = Fixed(2);
    pub(crate) const I32: Kind = Fixed(4);
    pub(crate) const I64: Kind = Fixed(8);
    pub(crate) const F64: Kind = Fixed(8);
    pub(crate) const UUID: Kind = Fixed(16);
    pub(crate) const I32S: Kind = Array(Elem::Fixed(4));
    pub(crate) const I64S: Kind = Array(Elem::Fixed(8));
    pub(crate) const STRS: Kind = Array(Elem::Str);

    /// Present in every version.
    pub(crate) const fn all(kind: Kind) -> Field {
        Field {
            min: 0,
            max: LATEST,
            kind,
        }
    }

    /// Added in version `min`.
    pub(crate) const fn from(min: i16, kind: Kind) -> Field {
        Field {
            min,
            max: LATEST,
            kind,
        }
    }

    /// Removed after version `max`.
    pub(crate) const fn until(max: i16, kind: Kind) -> Field {
        Field { min: 0, max, kind }
    }

    pub(crate) const fn between(min: i16, max: i16, kind: Kind) -> Field {
        Field { min, max, kind }
    }

    pub(crate) const fn shape(name: &'static str, fields: &'static [Field]) -> Shape {
        Shape {
            name,
            fields,
            tagged: &[],
        }
    }
}
