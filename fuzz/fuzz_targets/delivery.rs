//! A webhook body, after its signature verified: never a panic; either a delivery whose
//! stored payload is the body itself, or a refusal (400/422).
#![no_main]

use idnow_attempts::domain::Delivery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(delivery) = Delivery::parse(body) {
        assert_eq!(delivery.payload.as_bytes(), body);
        assert!(!delivery.transaction_number.as_str().is_empty());
        assert!(!delivery.result.is_empty());
    }
});
