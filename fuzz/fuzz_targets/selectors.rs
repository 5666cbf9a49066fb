//! Label and field selectors from query strings.
#![no_main]
use podnet_apimachinery::selector::{FieldSelector, LabelSelector};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(l) = LabelSelector::parse(s) {
        // what parses, prints and parses to the same selector
        let again = LabelSelector::parse(&l.to_string()).expect("canonical form parses");
        assert_eq!(l, again);
    }
    let _ = FieldSelector::parse(s, "Pod");
    let _ = FieldSelector::parse(s, "Event");
});
