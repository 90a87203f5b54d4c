//! One stable sort for the whole core, compiled once.
//!
//! `slice::sort_by` is instantiated for every element type and comparator:
//! about 4 KB of Wasm each, eleven of them were 43 KB of the Workers Wasm.
//! [`sort_by`] sorts positions with the comparator behind `dyn` (the std
//! sort is instantiated once, for `usize`), then moves the elements into
//! that order by following the permutation's cycles (O(n) swaps). Same
//! result as `slice::sort_by`: stable, O(n log n) comparisons.

use std::cmp::Ordering;

/// Stable sort of `v` by `cmp`, like [`slice::sort_by`].
pub(crate) fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mut order = {
        let s: &[T] = v;
        positions(s.len(), &mut |a, b| cmp(&s[a], &s[b]))
    };
    permute(&mut order, &mut |a, b| v.swap(a, b));
}

/// Stable sort of `v` by `key`, like [`slice::sort_by_key`].
pub(crate) fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// `order[i]`: the position of the element that belongs at `i`.
fn positions(len: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| cmp(a, b));
    order
}

/// Put the element at `order[i]` at `i`, one cycle of the permutation at a
/// time; `order` is left as the identity (a position is marked done by
/// pointing at itself).
fn permute(order: &mut [usize], swap: &mut dyn FnMut(usize, usize)) {
    for start in 0..order.len() {
        let mut i = start;
        loop {
            let src = order[i];
            order[i] = i;
            if src == start || src == i {
                break;
            }
            swap(i, src);
            i = src;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependency for a unit test).
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn sorts_stably_like_the_standard_sort() {
        let mut state = 7;
        for len in 0..200 {
            // Few distinct keys, so stability is exercised; the payload
            // is the original position.
            let v: Vec<(u64, usize)> = (0..len).map(|i| (next(&mut state) % 7, i)).collect();
            let mut ours = v.clone();
            sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
            let mut std_sorted = v.clone();
            std_sorted.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(ours, std_sorted, "len {len}");
        }
    }

    #[test]
    fn moves_owned_values_and_sorts_by_key() {
        let mut v: Vec<String> = ["d", "b", "a", "c", "b"].iter().map(|s| (*s).to_owned()).collect();
        sort_by(&mut v, Ord::cmp);
        assert_eq!(v, ["a", "b", "b", "c", "d"]);
        let mut w = vec![(1, 'a'), (3, 'b'), (2, 'c'), (3, 'd')];
        sort_by_key(&mut w, |p| std::cmp::Reverse(p.0));
        assert_eq!(w, [(3, 'b'), (3, 'd'), (2, 'c'), (1, 'a')]);
    }

    #[test]
    fn permutes_every_cycle_shape() {
        // Reversal (2-cycles), rotation (one long cycle), identity.
        for order in [vec![4, 3, 2, 1, 0], vec![1, 2, 3, 4, 0], vec![0, 1, 2, 3, 4], vec![2, 0, 1, 4, 3]] {
            let mut v: Vec<usize> = (0..order.len()).collect();
            let mut o = order.clone();
            permute(&mut o, &mut |a, b| v.swap(a, b));
            assert_eq!(v, order);
        }
    }
}
