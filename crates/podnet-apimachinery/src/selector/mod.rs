//! Label and field selectors.

pub mod fields;
pub mod labels;

pub use fields::{FieldSelector, field_value, supported_fields};
pub use labels::{LabelSelector, SelectorError};
