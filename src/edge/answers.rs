//! Room for the listings' answers: what the pages being answered may hold at once.
//!
//! A page is up to 1,000 attempts whose payloads may each be as large as the body limit: one
//! listing of large attempts made an answer of a gigabyte, held 2.3 times over while it was
//! built, and a few at once ended the process (a red-team session). So a listing takes room
//! in the [`PageBudget`] as it renders its page, as much as its first row suggests the page
//! takes, and more as it writes if that was not enough: a page that cannot fit in the
//! whole budget is refused, one that does not fit now is answered 503 with `Retry-After`.
//! The answer is written in pieces of at most `PIECE` bytes (512 KiB), each an allocation of its own,
//! and gives its room back as actix-http takes the pieces; so what the budget counts is what
//! the process holds, and what it does not count is at most one piece per connection. An
//! answer of more than one piece tells its [`Progress`], so that a client that stops taking
//! it loses its connection after the send timeout (`edge::connection`), and the room with it:
//! otherwise one client that reads nothing would hold its room for as long as it stays
//! connected, and the listings of everyone else would be answered 503.

use std::cell::Cell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest piece of an answer. Large enough that a page of a hundred 3 KB attempts
/// (300 KB) is one piece and goes out as before, in one write with its head: written in
/// pieces of 64 KiB, the page of 100's p99 at 16 connections was 73 ms against 28 ms
/// written whole (bench/compare, four runs each), a later piece's last segment waiting, it
/// seems, for the client's delayed acknowledgement. Small enough that what a connection holds
/// beyond the budget stays bounded.
const PIECE: usize = 512 * 1024;

/// The answer bytes that the listings of the process may hold at once.
#[derive(Debug, Clone)]
pub struct PageBudget {
    room: Arc<Semaphore>,
    total: usize,
}

/// Why an answer found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// Larger than the whole budget: it never fits.
    TooLarge,
    /// The budget is held by other answers now.
    Full,
}

impl PageBudget {
    pub fn new(total: usize) -> Self {
        // Taken in `u32` permits at a time.
        let total = total.min(u32::MAX as usize);
        Self {
            room: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// An answer with room for `expected` bytes, or the reason there is none: a request never
    /// waits for memory.
    pub fn answer(&self, expected: usize) -> Result<Answer, NoRoom> {
        let mut answer = Answer {
            budget: self.clone(),
            pieces: VecDeque::new(),
            piece: Vec::new(),
            length: 0,
            room: None,
            unfilled: 0,
        };
        answer.take(expected)?;
        answer.piece = Vec::with_capacity(expected.min(PIECE));
        Ok(answer)
    }

    /// Answer bytes held now.
    pub fn in_use(&self) -> usize {
        self.total - self.free()
    }

    /// Answer bytes free now.
    pub fn free(&self) -> usize {
        self.room.available_permits()
    }
}

/// An answer's body as it is written: full pieces, and the one being filled.
#[derive(Debug)]
pub struct Answer {
    budget: PageBudget,
    pieces: VecDeque<Bytes>,
    piece: Vec<u8>,
    length: usize,
    /// One permit per byte taken from the budget.
    room: Option<OwnedSemaphorePermit>,
    /// Room taken and not yet written to.
    unfilled: usize,
}

impl Answer {
    fn take(&mut self, bytes: usize) -> Result<(), NoRoom> {
        let needed = self.length + self.unfilled + bytes;
        if needed > self.budget.total {
            return Err(NoRoom::TooLarge);
        }
        let taken = u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.budget.room.clone().try_acquire_many_owned(bytes).ok())
            .ok_or(NoRoom::Full)?;
        match &mut self.room {
            Some(room) => room.merge(taken),
            None => self.room = Some(taken),
        }
        self.unfilled += bytes;
        Ok(())
    }

    /// Appends `bytes`, taking more room first if what was taken is not enough.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), NoRoom> {
        if bytes.len() > self.unfilled {
            self.take(bytes.len() - self.unfilled)?;
        }
        self.unfilled -= bytes.len();
        self.length += bytes.len();
        while !bytes.is_empty() {
            if self.piece.len() == PIECE {
                let full = std::mem::take(&mut self.piece);
                self.pieces.push_back(Bytes::from(full));
                // Sized to what is still expected, so that a page that fills its room
                // exactly allocates no more than it said.
                self.piece = Vec::with_capacity((self.unfilled + bytes.len()).min(PIECE));
            }
            let fits = bytes.len().min(PIECE - self.piece.len());
            if self.piece.capacity() - self.piece.len() < fits {
                // More than expected: grown as a `Vec` grows, but never past a piece.
                let grown = (self.piece.len() + fits)
                    .max(self.piece.capacity() * 2)
                    .min(PIECE);
                self.piece.reserve_exact(grown - self.piece.len());
            }
            let (now, later) = bytes.split_at(fits);
            self.piece.extend_from_slice(now);
            bytes = later;
        }
        Ok(())
    }

    /// The body to answer with; the room it holds goes back as actix-http takes its pieces.
    pub fn finish(self) -> AnswerBody {
        let Self {
            mut pieces,
            piece,
            length,
            mut room,
            unfilled,
            ..
        } = self;
        if !piece.is_empty() {
            pieces.push_back(Bytes::from(piece));
        }
        // Room taken and not written to goes back now.
        if let Some(room) = &mut room {
            drop(room.split(unfilled));
        }
        AnswerBody {
            pieces,
            length,
            room,
            progress: None,
        }
    }
}

/// When an answer last moved: actix-http took a piece of it (or the answer began), and
/// whether it is over (taken whole, or dropped with its connection).
#[derive(Debug)]
pub struct Progress {
    moved: Cell<Instant>,
    over: Cell<bool>,
}

impl Progress {
    pub fn moved(&self) -> Instant {
        self.moved.get()
    }

    pub fn is_over(&self) -> bool {
        self.over.get()
    }
}

/// A listing's answer: its pieces, and the room of those actix-http has not taken yet.
#[derive(Debug)]
pub struct AnswerBody {
    pieces: VecDeque<Bytes>,
    length: usize,
    room: Option<OwnedSemaphorePermit>,
    progress: Option<Rc<Progress>>,
}

impl AnswerBody {
    /// The answer's progress, for an answer of more than one piece (one piece goes out as
    /// any body of bytes does, its room already given back).
    pub fn progress(&mut self) -> Option<Rc<Progress>> {
        if self.pieces.len() <= 1 {
            return None;
        }
        let progress = self.progress.get_or_insert_with(|| {
            Rc::new(Progress {
                moved: Cell::new(Instant::now()),
                over: Cell::new(false),
            })
        });
        Some(Rc::clone(progress))
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        if let Some(progress) = &self.progress {
            progress.over.set(true);
        }
    }
}

impl MessageBody for AnswerBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.length as u64)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let piece = this.pieces.pop_front();
        if let Some(progress) = &this.progress {
            progress.moved.set(Instant::now());
        }
        if let (Some(piece), Some(room)) = (&piece, &mut this.room) {
            // Given to actix-http, which holds it until it is written: one piece at most per
            // connection (a held piece counts as buffered, and no more is asked for).
            drop(room.split(piece.len()));
        }
        Poll::Ready(piece.map(Ok))
    }

    /// One piece (every answer up to `PIECE` bytes) is the body as bytes: written as any
    /// body of bytes is, and its room goes back now.
    fn try_into_bytes(mut self) -> Result<Bytes, Self> {
        if self.pieces.len() <= 1 {
            Ok(self.pieces.pop_front().unwrap_or_default())
        } else {
            Err(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut body: AnswerBody, budget: &PageBudget) -> (Vec<u8>, Vec<usize>) {
        let mut written = Vec::new();
        let mut held_after_each = Vec::new();
        let waker = futures_util::task::noop_waker();
        let mut context = Context::from_waker(&waker);
        while let Poll::Ready(Some(Ok(piece))) = Pin::new(&mut body).poll_next(&mut context) {
            assert!(piece.len() <= PIECE);
            written.extend_from_slice(&piece);
            held_after_each.push(budget.in_use());
        }
        (written, held_after_each)
    }

    #[test]
    fn an_answer_holds_its_room_until_its_pieces_are_taken() {
        const SIZE: usize = 2 * PIECE + 20_000;
        let budget = PageBudget::new(4 * PIECE);
        let mut answer = budget.answer(SIZE).expect("room");
        assert_eq!(budget.in_use(), SIZE);
        let text: Vec<u8> = (0..SIZE).map(|n| (n % 251) as u8).collect();
        for part in text.chunks(7_000) {
            answer.write(part).expect("within its room");
        }
        let body = answer.finish();
        assert_eq!(body.size(), BodySize::Sized(SIZE as u64));
        assert_eq!(budget.in_use(), SIZE);
        let (written, held) = drain(body, &budget);
        assert_eq!(written, text);
        assert_eq!(held, [SIZE - PIECE, SIZE - 2 * PIECE, 0]);
    }

    #[test]
    fn an_answer_larger_than_expected_takes_more_room_and_gives_back_what_it_did_not_use() {
        let budget = PageBudget::new(100_000);
        let mut answer = budget.answer(10_000).expect("room");
        answer.write(&[b'x'; 30_000]).expect("more room");
        assert_eq!(budget.in_use(), 30_000);
        let other = budget.answer(70_000).expect("the rest");
        assert_eq!(answer.write(b"y"), Err(NoRoom::Full));
        drop(other);
        assert_eq!(answer.write(&[b'z'; 70_001]), Err(NoRoom::TooLarge));
        let mut small = budget.answer(1_000).expect("room");
        small.write(b"[]").expect("within its room");
        let body = small.finish();
        assert_eq!(
            budget.in_use(),
            30_000 + 2,
            "unwritten room goes back at once"
        );
        assert_eq!(body.try_into_bytes().ok(), Some(Bytes::from_static(b"[]")));
        assert_eq!(budget.in_use(), 30_000);
        drop(answer);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn an_answer_that_does_not_fit_is_told_why() {
        let budget = PageBudget::new(1_000);
        assert_eq!(budget.answer(1_001).err(), Some(NoRoom::TooLarge));
        let held = budget.answer(600).expect("room");
        assert_eq!(budget.answer(600).err(), Some(NoRoom::Full));
        drop(held);
        assert!(budget.answer(1_000).is_ok());
    }
}
