//! Shape, strides and offset: how a tensor's logical elements map to storage.
//!
//! Strides and the offset count elements (not bytes). A stride of 0 repeats one
//! element along that dimension (broadcast). Every view below returns a new
//! `Layout` over the same storage; none of them moves data.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides for `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1].max(1);
    }
    strides
}

impl Layout {
    pub fn contiguous(shape: &[usize]) -> Layout {
        Layout {
            strides: contiguous_strides(shape),
            shape: shape.to_vec(),
            offset: 0,
        }
    }

    /// A layout with explicit strides and offset. Whether it fits its storage is
    /// checked by `Tensor::as_strided`, which knows the storage size.
    pub fn new(shape: &[usize], strides: &[usize], offset: usize) -> Result<Layout> {
        if shape.len() != strides.len() {
            return Err(Error::op(
                "as_strided",
                format!("shape {shape:?} and strides {strides:?} differ in rank"),
            ));
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// One past the largest storage index this layout touches (0 when empty),
    /// or `None` on overflow.
    pub fn storage_span(&self) -> Option<usize> {
        if self.elem_count() == 0 {
            return Some(0);
        }
        let mut last = self.offset;
        for (&d, &s) in self.shape.iter().zip(&self.strides) {
            last = last.checked_add((d - 1).checked_mul(s)?)?;
        }
        last.checked_add(1)
    }

    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    fn layout_err(&self, op: &'static str, msg: String) -> Error {
        Error::Layout {
            op,
            msg,
            shape: self.shape.clone(),
            strides: self.strides.clone(),
        }
    }

    fn check_dim(&self, op: &'static str, dim: usize) -> Result<()> {
        if dim >= self.rank() {
            return Err(self.layout_err(op, format!("dim {dim} out of range")));
        }
        Ok(())
    }

    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Layout> {
        self.check_dim("transpose", d0)?;
        self.check_dim("transpose", d1)?;
        let mut l = self.clone();
        l.shape.swap(d0, d1);
        l.strides.swap(d0, d1);
        Ok(l)
    }

    pub fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let mut seen = vec![false; self.rank()];
        if dims.len() != self.rank() {
            return Err(self.layout_err("permute", format!("permutation {dims:?} has wrong rank")));
        }
        for &d in dims {
            if d >= self.rank() || seen[d] {
                return Err(self.layout_err("permute", format!("{dims:?} is not a permutation")));
            }
            seen[d] = true;
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        self.check_dim("narrow", dim)?;
        if start
            .checked_add(len)
            .is_none_or(|end| end > self.shape[dim])
        {
            return Err(self.layout_err(
                "narrow",
                format!(
                    "range {start}..{} out of bounds on dim {dim}",
                    start.saturating_add(len)
                ),
            ));
        }
        let mut l = self.clone();
        l.offset += start * self.strides[dim];
        l.shape[dim] = len;
        Ok(l)
    }

    /// A new shape over the same elements; only for contiguous layouts.
    pub fn reshape(&self, shape: &[usize]) -> Result<Layout> {
        let n: Option<usize> = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(self.elem_count()) {
            return Err(self.layout_err(
                "reshape",
                format!("cannot reshape {} elements to {shape:?}", self.elem_count()),
            ));
        }
        if !self.is_contiguous() {
            return Err(self.layout_err(
                "reshape",
                "not contiguous: call contiguous() first".to_string(),
            ));
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: self.offset,
        })
    }

    /// Broadcast to `shape` (numpy rules, new leading dims allowed): size-1
    /// dimensions get stride 0.
    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Layout> {
        if shape.len() < self.rank() {
            return Err(self.layout_err("broadcast", format!("cannot broadcast to {shape:?}")));
        }
        let extra = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for i in 0..self.rank() {
            let (have, want) = (self.shape[i], shape[extra + i]);
            strides[extra + i] = if have == want {
                self.strides[i]
            } else if have == 1 {
                0
            } else {
                return Err(self.layout_err("broadcast", format!("cannot broadcast to {shape:?}")));
            };
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Storage index of the element at a multi-index.
    pub fn index(&self, idx: &[usize]) -> usize {
        debug_assert_eq!(idx.len(), self.rank());
        self.offset
            + idx
                .iter()
                .zip(&self.strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()
    }

    /// Storage indices of every element in row-major logical order.
    pub fn storage_indices(&self) -> StridedIndex<'_> {
        StridedIndex::new(self)
    }
}

/// Iterates the storage index of each logical element in row-major order.
pub struct StridedIndex<'a> {
    layout: &'a Layout,
    idx: Vec<usize>,
    next: Option<usize>,
}

impl<'a> StridedIndex<'a> {
    fn new(layout: &'a Layout) -> Self {
        let next = if layout.elem_count() == 0 {
            None
        } else {
            Some(layout.offset)
        };
        StridedIndex {
            layout,
            idx: vec![0; layout.rank()],
            next,
        }
    }
}

impl Iterator for StridedIndex<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let cur = self.next?;
        let mut pos = cur;
        let mut d = self.layout.rank();
        loop {
            if d == 0 {
                self.next = None;
                break;
            }
            d -= 1;
            self.idx[d] += 1;
            pos += self.layout.strides[d];
            if self.idx[d] < self.layout.shape[d] {
                self.next = Some(pos);
                break;
            }
            pos -= self.idx[d] * self.layout.strides[d];
            self.idx[d] = 0;
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_index_walks_transposed_layout() {
        let l = Layout::contiguous(&[2, 3]).transpose(0, 1).unwrap();
        let got: Vec<usize> = l.storage_indices().collect();
        assert_eq!(got, vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn narrow_and_broadcast() {
        let l = Layout::contiguous(&[4, 5]).narrow(1, 1, 3).unwrap();
        assert_eq!(l.offset(), 1);
        assert!(!l.is_contiguous());
        assert_eq!(l.storage_span(), Some(19));
        let b = Layout::contiguous(&[1, 3])
            .broadcast_as(&[2, 4, 3])
            .unwrap();
        assert_eq!(b.strides(), &[0, 0, 1]);
        assert!(Layout::contiguous(&[2, 3]).broadcast_as(&[4, 3]).is_err());
    }

    #[test]
    fn reshape_requires_contiguous() {
        let l = Layout::contiguous(&[2, 3]);
        assert!(l.reshape(&[3, 2]).is_ok());
        assert!(l.reshape(&[4, 2]).is_err());
        assert!(l.transpose(0, 1).unwrap().reshape(&[6]).is_err());
    }
}
