//! `page[number]` / `page[size]` pagination of the attempt history.

use std::num::NonZeroU32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    number: NonZeroU32,
    size: NonZeroU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("page[number] must be a whole number from 1 to {}", u32::MAX)]
    InvalidNumber,
    #[error(
        "page[size] must be a whole number from 1 to {}",
        PageRequest::MAX_SIZE
    )]
    InvalidSize,
    #[error("{0} is given more than once")]
    Repeated(&'static str),
    /// `page`, or a member of it other than `number` and `size` (`page[Size]`, `page[offset]`):
    /// a client's slip that would otherwise silently give it another page than it asked for.
    #[error("page[number] and page[size] are the only pagination parameters")]
    UnknownMember,
}

const NUMBER_KEY: &str = "page[number]";
const SIZE_KEY: &str = "page[size]";

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            number: NonZeroU32::MIN,
            size: NonZeroU32::new(Self::DEFAULT_SIZE).expect("the default size is not zero"),
        }
    }
}

impl PageRequest {
    pub const DEFAULT_SIZE: u32 = 10;
    pub const MAX_SIZE: u32 = 1000;

    /// Reads the pagination parameters of a raw (still percent-encoded) query string. Other
    /// parameters are left to others, but the `page` family is this one's (as JSON:API
    /// reserves it): a member of it that is not known is refused.
    pub fn from_query(query: &str) -> Result<Self, PageError> {
        let mut number = None;
        let mut size = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let (slot, key, error) = match key.as_ref() {
                NUMBER_KEY => (&mut number, NUMBER_KEY, PageError::InvalidNumber),
                SIZE_KEY => (&mut size, SIZE_KEY, PageError::InvalidSize),
                other if is_page_member(other) => return Err(PageError::UnknownMember),
                _ => continue,
            };
            if slot.is_some() {
                return Err(PageError::Repeated(key));
            }
            *slot = Some(parse_positive(&value).ok_or(error)?);
        }
        let default = Self::default();
        let size = size.unwrap_or(default.size);
        if size.get() > Self::MAX_SIZE {
            return Err(PageError::InvalidSize);
        }
        Ok(Self {
            number: number.unwrap_or(default.number),
            size,
        })
    }

    pub fn new(number: u32, size: u32) -> Option<Self> {
        let size = NonZeroU32::new(size).filter(|size| size.get() <= Self::MAX_SIZE)?;
        Some(Self {
            number: NonZeroU32::new(number)?,
            size,
        })
    }

    pub fn number(&self) -> u32 {
        self.number.get()
    }

    pub fn size(&self) -> u32 {
        self.size.get()
    }

    /// Rows to skip. Cannot overflow: at most (2^32 - 2) * 1000.
    pub fn offset(&self) -> i64 {
        i64::from(self.number.get() - 1) * i64::from(self.size.get())
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.size.get())
    }

    /// The pages an RFC 8288 `Link` header names for a history of `total` items, in the order
    /// `first`, `prev`, `next`, `last`. An empty history still has one (empty) page.
    pub fn links(&self, total: u64) -> Vec<(&'static str, PageRequest)> {
        let size = u64::from(self.size.get());
        let last = total.div_ceil(size).clamp(1, u64::from(u32::MAX)) as u32;
        let number = self.number.get();
        let page = |number: u32| Self {
            number: NonZeroU32::new(number).expect("page numbers here are at least 1"),
            size: self.size,
        };
        let mut links = vec![("first", page(1))];
        if number > 1 {
            // From past the end, "prev" is the last page that exists.
            links.push(("prev", page((number - 1).min(last))));
        }
        if number < last {
            links.push(("next", page(number + 1)));
        }
        links.push(("last", page(last)));
        links
    }
}

/// Whether `key` is `page` or a member of it (`page[…]`), in any case: `PAGE[size]` is a
/// slip too.
fn is_page_member(key: &str) -> bool {
    let family = key
        .get(..4)
        .is_some_and(|start| start.eq_ignore_ascii_case("page"));
    family && (key.len() == 4 || key[4..].starts_with('['))
}

/// Plain decimal digits only: no sign, no exponent, no spaces.
fn parse_positive(value: &str) -> Option<NonZeroU32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<NonZeroU32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn page(number: u32, size: u32) -> PageRequest {
        PageRequest::new(number, size).expect("valid page")
    }

    #[test]
    fn defaults_to_the_first_ten() {
        assert_eq!(PageRequest::from_query(""), Ok(page(1, 10)));
        assert_eq!(PageRequest::from_query("foo=bar"), Ok(page(1, 10)));
        assert_eq!(
            PageRequest::from_query("pages=2&paging[size]=3"),
            Ok(page(1, 10))
        );
    }

    #[test]
    fn reads_encoded_and_plain_brackets() {
        assert_eq!(
            PageRequest::from_query("page%5Bnumber%5D=3&page%5Bsize%5D=25"),
            Ok(page(3, 25))
        );
        assert_eq!(
            PageRequest::from_query("page[number]=2&page[size]=1000"),
            Ok(page(2, 1000))
        );
    }

    #[test]
    fn refuses_malformed_and_out_of_range_values() {
        for (query, error) in [
            ("page[size]=-1", PageError::InvalidSize),
            ("page[size]=1e9", PageError::InvalidSize),
            ("page[size]=abc", PageError::InvalidSize),
            ("page[size]=0", PageError::InvalidSize),
            ("page[size]=1001", PageError::InvalidSize),
            ("page[size]=", PageError::InvalidSize),
            ("page[size]=+5", PageError::InvalidSize),
            ("page[size]=%205", PageError::InvalidSize),
            ("page[number]=0", PageError::InvalidNumber),
            ("page[number]=4294967296", PageError::InvalidNumber),
            ("page[number]=1.5", PageError::InvalidNumber),
            (
                "page[number]=1&page[number]=2",
                PageError::Repeated("page[number]"),
            ),
            ("page[Size]=3", PageError::UnknownMember),
            ("page%5Boffset%5D=3&page[size]=5", PageError::UnknownMember),
            ("page=2", PageError::UnknownMember),
            ("page[]=2", PageError::UnknownMember),
            ("PAGE[size]=3", PageError::UnknownMember),
            ("Page=3", PageError::UnknownMember),
        ] {
            assert_eq!(PageRequest::from_query(query), Err(error), "{query}");
        }
    }

    #[test]
    fn links_name_the_pages_that_exist() {
        let names = |p: PageRequest, total| {
            p.links(total)
                .into_iter()
                .map(|(rel, p)| format!("{rel}={}", p.number()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(names(page(1, 10), 0), "first=1 last=1");
        assert_eq!(names(page(1, 10), 25), "first=1 next=2 last=3");
        assert_eq!(names(page(2, 10), 25), "first=1 prev=1 next=3 last=3");
        assert_eq!(names(page(3, 10), 25), "first=1 prev=2 last=3");
        assert_eq!(names(page(9, 10), 25), "first=1 prev=3 last=3");
        assert_eq!(names(page(1, 25), 25), "first=1 last=1");
    }

    proptest! {
        #[test]
        fn any_query_parses_or_is_refused_without_panicking(query in "\\PC{0,64}") {
            if let Ok(page) = PageRequest::from_query(&query) {
                prop_assert!((1..=PageRequest::MAX_SIZE).contains(&page.size()));
                prop_assert!(page.offset() >= 0);
            }
        }

        #[test]
        fn valid_numbers_round_trip(number in 1u32.., size in 1u32..=1000) {
            let query = format!("page%5Bnumber%5D={number}&page%5Bsize%5D={size}");
            prop_assert_eq!(PageRequest::from_query(&query), Ok(page(number, size)));
        }

        #[test]
        fn links_stay_within_the_history(number in 1u32..100, size in 1u32..=20, total in 0u64..500) {
            let last = total.div_ceil(u64::from(size)).max(1);
            for (_, linked) in page(number, size).links(total) {
                prop_assert!(u64::from(linked.number()) <= last);
                prop_assert_eq!(linked.size(), size);
            }
        }
    }
}
