//! The per-partition fan-out every partition API shares (Produce, Fetch,
//! ListOffsets, DeleteRecords, OffsetForLeaderEpoch, DescribeProducers,
//! DescribeLogDirs; later transaction markers), written once:
//!
//! - [`Grid`]: one answer per partition, shaped like the request (topic
//!   position, partition position); answers arrive in any order and the
//!   grid must be full before it is encoded.
//! - [`Split`]: the work for other shards, grouped by owning shard, each
//!   piece tagged with where its answer goes.
//! - [`scatter`]: runs every owner's share on that owner at once (one
//!   cross-shard call per owner, its pieces together), and answers for an
//!   owner that cannot be reached (it is stopping) so that every piece gets
//!   an answer.
//!
//! Lives on: the shard serving the request; the work runs on the owners.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use futures_util::future::join_all;
use rafka_shard::shard::Shard;

/// A partition's place in a request: (topic position, partition position).
pub type Slot = (usize, usize);

/// One answer per partition of a request, in its shape.
#[derive(Debug, Clone)]
pub struct Grid<T> {
    rows: Vec<Vec<Option<T>>>,
}

impl<T> Grid<T> {
    /// An empty grid with a row of `len` slots per topic.
    pub fn new(row_lens: impl IntoIterator<Item = usize>) -> Self {
        let rows = row_lens
            .into_iter()
            .map(|len| std::iter::repeat_with(|| None).take(len).collect())
            .collect();
        Grid { rows }
    }

    /// Answers `slot`. Every slot comes from the request the grid was
    /// shaped by: one outside it is a handler bug.
    pub fn set(&mut self, (row, column): Slot, value: T) {
        let cell = self
            .rows
            .get_mut(row)
            .and_then(|cells| cells.get_mut(column));
        assert!(cell.is_some(), "slot ({row}, {column}) is outside the grid");
        if let Some(cell) = cell {
            *cell = Some(value);
        }
    }

    /// Answers every slot of `row` (a topic-level error).
    pub fn fill_row(&mut self, row: usize, value: &T)
    where
        T: Clone,
    {
        for cell in self.rows.get_mut(row).into_iter().flatten() {
            *cell = Some(value.clone());
        }
    }

    /// Answers every slot.
    pub fn fill_all(&mut self, value: &T)
    where
        T: Clone,
    {
        for row in 0..self.rows.len() {
            self.fill_row(row, value);
        }
    }

    /// The answers given so far, in request order.
    pub fn answered(&self) -> impl Iterator<Item = &T> {
        self.rows.iter().flatten().flatten()
    }

    /// The answers by topic, in request order. The grid must be full: a
    /// partition without an answer is a handler bug, never a silent gap.
    pub fn into_rows(self) -> Vec<Vec<T>> {
        self.rows
            .into_iter()
            .enumerate()
            .map(|(row, cells)| {
                cells
                    .into_iter()
                    .enumerate()
                    .map(|(column, cell)| {
                        cell.unwrap_or_else(|| panic!("slot ({row}, {column}) was never answered"))
                    })
                    .collect()
            })
            .collect()
    }
}

/// Work for the partitions' owners: by owning shard, each piece with the
/// key its answer goes to.
#[derive(Debug)]
pub struct Split<K, W> {
    by_owner: BTreeMap<usize, Vec<(K, W)>>,
}

impl<K, W> Default for Split<K, W> {
    fn default() -> Self {
        Split {
            by_owner: BTreeMap::new(),
        }
    }
}

impl<K, W> Split<K, W> {
    pub fn new() -> Self {
        Split::default()
    }

    pub fn push(&mut self, owner: usize, key: K, work: W) {
        self.by_owner.entry(owner).or_default().push((key, work));
    }

    pub fn is_empty(&self) -> bool {
        self.by_owner.is_empty()
    }

    /// The work by owner, each owner's pieces in the order pushed.
    pub fn into_owners(self) -> impl Iterator<Item = (usize, Vec<(K, W)>)> {
        self.by_owner.into_iter()
    }
}

/// Runs each owner's pieces on that owner, every owner at once, and
/// returns one answer per piece with its key. `on_owner` gets the owner's
/// shard and its pieces (in the order pushed) and answers each, in order;
/// an owner that cannot be reached answers `unreachable()` for each piece.
pub async fn scatter<K, W, R, F, Fut>(
    shard: &Shard,
    split: Split<K, W>,
    on_owner: F,
    unreachable: impl Fn() -> R,
) -> Vec<(K, R)>
where
    W: Send + 'static,
    R: Send + 'static,
    F: FnOnce(Rc<Shard>, Vec<W>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Vec<R>> + 'static,
{
    let unreachable = &unreachable;
    let calls = split.into_owners().map(|(owner, pieces)| {
        let on_owner = on_owner.clone();
        async move {
            let (keys, works): (Vec<K>, Vec<W>) = pieces.into_iter().unzip();
            let count = works.len();
            let answers = shard
                .router
                .invoke_on(owner, move |shard: Rc<Shard>| on_owner(shard, works))
                .await;
            let answers = match answers {
                Ok(answers) => {
                    assert_eq!(answers.len(), count, "owner {owner} answered every piece");
                    answers
                }
                Err(error) => {
                    // The owner is stopping: the client retries once its
                    // metadata says where.
                    tracing::debug!(%error, owner, "partition owner unreachable");
                    (0..count).map(|_| unreachable()).collect()
                }
            };
            keys.into_iter().zip(answers).collect::<Vec<_>>()
        }
    });
    join_all(calls).await.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_answers_in_request_shape() {
        let mut grid: Grid<i32> = Grid::new([2, 0, 3]);
        grid.fill_row(2, &7);
        grid.set((0, 1), 2);
        grid.set((0, 0), 1);
        grid.set((2, 0), 5);
        assert_eq!(
            grid.answered().copied().collect::<Vec<_>>(),
            [1, 2, 5, 7, 7]
        );
        assert_eq!(grid.into_rows(), vec![vec![1, 2], vec![], vec![5, 7, 7]]);
    }

    #[test]
    #[should_panic(expected = "slot (1, 0) was never answered")]
    fn a_grid_with_a_gap_is_a_bug() {
        let mut grid: Grid<i32> = Grid::new([1, 1]);
        grid.set((0, 0), 1);
        grid.into_rows();
    }

    #[test]
    #[should_panic(expected = "outside the grid")]
    fn a_slot_outside_the_request_is_a_bug() {
        let mut grid: Grid<i32> = Grid::new([1]);
        grid.set((0, 1), 1);
    }

    #[test]
    fn a_split_groups_by_owner_in_push_order() {
        let mut split = Split::new();
        split.push(1, "a", 10);
        split.push(0, "b", 20);
        split.push(1, "c", 30);
        let owners: Vec<(usize, Vec<(&str, i32)>)> = split.into_owners().collect();
        assert_eq!(
            owners,
            vec![(0, vec![("b", 20)]), (1, vec![("a", 10), ("c", 30)])]
        );
    }
}
