//! The query string of the listing: never a panic; an accepted page is within bounds and
//! its links stay within bounds too.
#![no_main]

use idnow_attempts::domain::PageRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &str| {
    if let Ok(page) = PageRequest::from_query(query) {
        assert!(page.number() >= 1);
        assert!((1..=1000).contains(&page.size()));
        assert!(page.offset() >= 0 && page.limit() == i64::from(page.size()));
        for total in [0, 1, u64::from(page.size()), u64::MAX / 2] {
            for (_, linked) in page.links(total) {
                assert!(linked.number() >= 1 && linked.size() == page.size());
            }
        }
    }
});
