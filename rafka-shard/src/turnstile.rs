//! A first-come, first-served turn: whoever takes a ticket first goes
//! first, whatever order the executor later polls the waiters in.
//!
//! Why not the partition's lock: glommio's `RwLock` (and `Semaphore`) hand
//! a free lock to whoever asks first *when polled*. A waiter woken by a
//! release is only queued to run; a task polled in between (a produce
//! request read off the socket right after, or the reader whose release it
//! was) takes the lock before it. For appends that reorders a connection's
//! pipelined produce requests: a non-idempotent producer's records land out
//! of send order (Kafka reads one request per connection at a time and
//! never does this). A ticket is taken synchronously, on the call's first
//! poll, and the request tasks of a connection are first polled in the
//! order they were read, so the turn order is the request order.
//!
//! A ticket dropped before its turn (its caller cancelled) is skipped when
//! the turn reaches it.
//!
//! Lives on: one shard; not `Send`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use event_listener::Event;

/// Turns handed out in ticket order.
#[derive(Default)]
pub struct Turnstile {
    /// The number the next ticket gets.
    next: Cell<u64>,
    /// The ticket whose turn it is.
    serving: Cell<u64>,
    /// Tickets dropped before their turn came.
    abandoned: RefCell<BTreeSet<u64>>,
    turn_moved: Event,
}

/// A place in the line; the turn passes on when it is dropped.
pub struct Ticket<'a> {
    turnstile: &'a Turnstile,
    number: u64,
}

impl Turnstile {
    pub fn new() -> Turnstile {
        Turnstile::default()
    }

    /// Takes the next place in line (never waits).
    pub fn ticket(&self) -> Ticket<'_> {
        let number = self.next.get();
        self.next.set(number + 1);
        Ticket {
            turnstile: self,
            number,
        }
    }

    /// Tickets taken and not yet through (waiting or holding the turn).
    pub fn waiting(&self) -> u64 {
        self.next.get() - self.serving.get() - self.abandoned.borrow().len() as u64
    }

    fn pass_on(&self) {
        let mut next = self.serving.get() + 1;
        let mut abandoned = self.abandoned.borrow_mut();
        while abandoned.remove(&next) {
            next += 1;
        }
        self.serving.set(next);
        self.turn_moved.notify(usize::MAX);
    }
}

impl Ticket<'_> {
    /// Waits until every earlier ticket has been dropped.
    pub async fn turn(&self) {
        loop {
            if self.is_turn() {
                return;
            }
            let listener = self.turnstile.turn_moved.listen();
            if self.is_turn() {
                return;
            }
            listener.await;
        }
    }

    fn is_turn(&self) -> bool {
        self.turnstile.serving.get() == self.number
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.is_turn() {
            self.turnstile.pass_on();
        } else {
            self.turnstile.abandoned.borrow_mut().insert(self.number);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll_once(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        future.poll(&mut cx) == Poll::Ready(())
    }

    #[test]
    fn turns_follow_tickets_not_polls() {
        let turnstile = Turnstile::new();
        let first = turnstile.ticket();
        let second = turnstile.ticket();
        let third = turnstile.ticket();
        assert_eq!(turnstile.waiting(), 3);
        // Polled out of order: only the first ticket's turn is ready.
        assert!(!poll_once(pin!(third.turn())));
        assert!(!poll_once(pin!(second.turn())));
        assert!(poll_once(pin!(first.turn())));
        drop(first);
        assert!(!poll_once(pin!(third.turn())));
        assert!(poll_once(pin!(second.turn())));
        drop(second);
        assert!(poll_once(pin!(third.turn())));
        drop(third);
        assert_eq!(turnstile.waiting(), 0);
    }

    #[test]
    fn an_abandoned_ticket_is_skipped() {
        let turnstile = Turnstile::new();
        let first = turnstile.ticket();
        let second = turnstile.ticket();
        let third = turnstile.ticket();
        let fourth = turnstile.ticket();
        drop(second);
        drop(third);
        assert_eq!(turnstile.waiting(), 2);
        assert!(!poll_once(pin!(fourth.turn())));
        drop(first);
        assert!(poll_once(pin!(fourth.turn())));
        drop(fourth);
        let fifth = turnstile.ticket();
        assert!(poll_once(pin!(fifth.turn())));
        assert_eq!(turnstile.waiting(), 1);
    }
}
