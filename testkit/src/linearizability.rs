//! Whether a concurrent history is linearizable against a sequential specification: Wing and
//! Gong's search with Lowe's cache, as Knossos and Porcupine run it.
//!
//! The search linearizes one operation at a time, any whose real-time predecessors (the
//! definite operations that completed before it was invoked) are all linearized, and remembers
//! every (set of linearized operations, specification state) it has reached, so a state is
//! explored once however many orders lead to it. stateright's `LinearizabilityTester`, which
//! this replaces, explores every interleaving afresh: a history that is *not* linearizable
//! costs it a factorial of its concurrent operations, and one such order ran CI's histories
//! test for 25 minutes (ARCHITECTURE.md "stateright's linearizability search", with the
//! reproduction). `tests` checks this search against stateright's on random small histories.
//!
//! An operation whose outcome is unknown (no completion) may take effect at any point after
//! its invocation or never, and what it would have answered is not checked, as Jepsen treats
//! `:info` operations. The search has a budget of states; past it the answer is `TooLarge`,
//! never a guess.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::Instant;

use stateright::semantics::SequentialSpec;

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Operation<Op, Ret> {
    pub invoked: Instant,
    /// When it completed and what it answered; `None` when its outcome is unknown.
    pub completed: Option<(Instant, Ret)>,
    pub op: Op,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linearizability {
    Linearizable,
    NotLinearizable,
    /// The search reached this many states without an answer.
    TooLarge {
        states: usize,
    },
}

/// A set of operations by index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Set(Vec<u64>);

impl Set {
    fn empty(len: usize) -> Self {
        Set(vec![0; len.div_ceil(64)])
    }
    fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }
    fn contains(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }
    fn includes(&self, other: &Set) -> bool {
        self.0
            .iter()
            .zip(&other.0)
            .all(|(mine, theirs)| theirs & !mine == 0)
    }
}

/// Whether `history` is linearizable against `initial`, exploring at most `budget` states.
pub fn check<S>(initial: &S, history: &[Operation<S::Op, S::Ret>], budget: usize) -> Linearizability
where
    S: SequentialSpec + Clone + Eq + Hash,
    S::Ret: PartialEq,
{
    let len = history.len();
    let mut definite = Set::empty(len);
    // Each operation's real-time predecessors.
    let mut before: Vec<Set> = vec![Set::empty(len); len];
    for (index, operation) in history.iter().enumerate() {
        if let Some((completed, _)) = &operation.completed {
            definite.insert(index);
            for (later, other) in history.iter().enumerate() {
                if *completed < other.invoked {
                    before[later].insert(index);
                }
            }
        }
    }
    let start = Set::empty(len);
    if start.includes(&definite) {
        return Linearizability::Linearizable;
    }
    let mut seen: HashSet<(Set, S)> = HashSet::new();
    seen.insert((start.clone(), initial.clone()));
    let mut pending = vec![(start, initial.clone())];
    while let Some((done, spec)) = pending.pop() {
        for (index, operation) in history.iter().enumerate() {
            if done.contains(index) || !done.includes(&before[index]) {
                continue;
            }
            let mut next = spec.clone();
            let answer = next.invoke(&operation.op);
            if let Some((_, expected)) = &operation.completed {
                if answer != *expected {
                    continue;
                }
            }
            let mut linearized = done.clone();
            linearized.insert(index);
            if linearized.includes(&definite) {
                return Linearizability::Linearizable;
            }
            if seen.insert((linearized.clone(), next.clone())) {
                if seen.len() > budget {
                    return Linearizability::TooLarge { states: seen.len() };
                }
                pending.push((linearized, next));
            }
        }
    }
    Linearizability::NotLinearizable
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

    use super::*;

    /// A register with a counter: small enough to enumerate, rich enough that order matters.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    struct Register(u8);

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum RegisterOp {
        Write(u8),
        Increment,
        Read,
    }

    impl SequentialSpec for Register {
        type Op = RegisterOp;
        type Ret = u8;
        fn invoke(&mut self, op: &RegisterOp) -> u8 {
            match op {
                RegisterOp::Write(value) => self.0 = *value,
                RegisterOp::Increment => self.0 = self.0.wrapping_add(1) % 4,
                RegisterOp::Read => {}
            }
            self.0
        }
    }

    /// One operation per process, as the history checker feeds them.
    fn stateright_says(history: &[Operation<RegisterOp, u8>]) -> bool {
        let mut steps: Vec<(Instant, u8, usize)> = Vec::new();
        for (index, operation) in history.iter().enumerate() {
            steps.push((operation.invoked, 0, index));
            if let Some((completed, _)) = &operation.completed {
                steps.push((*completed, 1, index));
            }
        }
        steps.sort_by_key(|(at, rank, _)| (*at, *rank));
        let mut tester = LinearizabilityTester::new(Register::default());
        for (_, rank, index) in steps {
            let operation = &history[index];
            let fed = if rank == 0 {
                tester.on_invoke(index, operation.op.clone())
            } else {
                let (_, ret) = operation.completed.as_ref().unwrap();
                tester.on_return(index, *ret)
            };
            fed.unwrap();
        }
        tester.is_consistent()
    }

    fn random_history(rng: &mut fastrand::Rng, zero: Instant) -> Vec<Operation<RegisterOp, u8>> {
        let at = |ms: u64| zero + Duration::from_millis(ms);
        (0..rng.usize(1..7))
            .map(|_| {
                let invoked = rng.u64(0..20);
                let op = match rng.u8(0..3) {
                    0 => RegisterOp::Write(rng.u8(0..4)),
                    1 => RegisterOp::Increment,
                    _ => RegisterOp::Read,
                };
                let completed =
                    (rng.u8(0..5) > 0).then(|| (at(invoked + 1 + rng.u64(0..10)), rng.u8(0..4)));
                Operation {
                    invoked: at(invoked),
                    completed,
                    op,
                }
            })
            .collect()
    }

    #[test]
    fn it_agrees_with_staterights_search_on_random_small_histories() {
        let mut rng = fastrand::Rng::with_seed(7);
        let zero = Instant::now();
        let (mut linearizable, mut not) = (0, 0);
        for _ in 0..20_000 {
            let history = random_history(&mut rng, zero);
            let ours = check(&Register::default(), &history, usize::MAX);
            let theirs = stateright_says(&history);
            assert_eq!(
                ours == Linearizability::Linearizable,
                theirs,
                "{history:#?}"
            );
            if theirs {
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        // Both kinds were met, or the comparison proves little.
        assert!(
            linearizable > 1_000 && not > 1_000,
            "{linearizable} / {not}"
        );
    }

    /// `n` overlapping reads that saw the initial value and one later read that saw a value
    /// nothing wrote: not linearizable, and every order of the reads says so.
    fn reads_then_impossible(n: usize) -> Vec<Operation<RegisterOp, u8>> {
        let zero = Instant::now();
        let at = |ms: u64| zero + Duration::from_millis(ms);
        let mut history: Vec<_> = (0..n)
            .map(|index| Operation {
                invoked: at(index as u64),
                completed: Some((at(100 + index as u64), 0)),
                op: RegisterOp::Read,
            })
            .collect();
        history.push(Operation {
            invoked: at(200),
            completed: Some((at(201), 3)),
            op: RegisterOp::Read,
        });
        history
    }

    #[test]
    fn a_history_that_is_not_linearizable_costs_states_not_orders() {
        // 14 concurrent reads: 14! (87 billion) orders for a search without a cache, 2^14
        // sets of reads for ours, the register's state never changing.
        let history = reads_then_impossible(14);
        assert_eq!(
            check(&Register::default(), &history, 100_000),
            Linearizability::NotLinearizable
        );
        // The budget is honoured: a small one ends in TooLarge, not in a verdict.
        assert!(matches!(
            check(&Register::default(), &history, 1_000),
            Linearizability::TooLarge { .. }
        ));
    }

    #[test]
    fn an_unknown_outcome_may_have_happened_or_not() {
        let zero = Instant::now();
        let at = |ms: u64| zero + Duration::from_millis(ms);
        let write = Operation {
            invoked: at(0),
            completed: None,
            op: RegisterOp::Write(2),
        };
        let read = |ms: u64, value: u8| Operation {
            invoked: at(ms),
            completed: Some((at(ms + 1), value)),
            op: RegisterOp::Read,
        };
        let register = Register::default();
        assert_eq!(
            check(&register, &[write.clone(), read(5, 2)], 100),
            Linearizability::Linearizable
        );
        assert_eq!(
            check(&register, &[write.clone(), read(5, 0)], 100),
            Linearizability::Linearizable
        );
        // Once seen, it stays seen.
        assert_eq!(
            check(&register, &[write, read(5, 2), read(10, 0)], 100),
            Linearizability::NotLinearizable
        );
    }
}
