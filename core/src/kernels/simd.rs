//! Every `unsafe` block of the kernels: AVX2 `#[target_feature]` functions and the raw-pointer
//! call into `gemm`. The safe entry points check every slice length and offset first and return
//! `false` when the CPU lacks AVX2 (the caller then runs the portable path), so the inner loops
//! may load through raw pointers: each `// SAFETY:` comment names the check that covers it.

/// Input vectors processed together by the CREW kernel (i16 accumulators: two registers each).
pub(crate) const CREW_MAX_VECTORS: usize = 4;

/// Whether AVX2 is available (detected once by std, cached).
pub(crate) fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y[v][j] = sum_i w[j][i] * x[v][i]`: `w` row-major `[n_out][n_in]`, `x` vector-major
/// `[nv][n_in]`, `y` vector-major `[nv][n_out]`, as one GEMM with `gemm`.
pub(crate) fn sgemm_rows(w: &[f32], n_out: usize, n_in: usize, x: &[f32], nv: usize, y: &mut [f32]) {
    let ok = n_out > 0
        && n_in > 0
        && nv > 0
        && n_out.checked_mul(n_in) == Some(w.len())
        && nv.checked_mul(n_in) == Some(x.len())
        && nv.checked_mul(n_out) == Some(y.len())
        && isize::try_from(w.len().max(x.len()).max(y.len())).is_ok();
    if !ok {
        y.fill(0.0);
        return;
    }
    // SAFETY: dst is `y`, an n_out x nv matrix with column stride n_out and row stride 1, so its
    // largest element offset is (nv-1)*n_out + n_out-1 < y.len(); lhs is `w`, n_out x n_in with
    // row stride n_in and column stride 1: largest offset n_out*n_in - 1 < w.len(); rhs is `x`,
    // n_in x nv with column stride n_in and row stride 1: largest offset nv*n_in - 1 < x.len().
    // All lengths were checked above and fit isize; `y` does not alias `w` or `x` (&mut).
    // read_dst = false, so the uninitialized-read concern does not arise (y is initialized anyway).
    unsafe {
        gemm::gemm(
            n_out,
            nv,
            n_in,
            y.as_mut_ptr(),
            n_out as isize,
            1,
            false,
            w.as_ptr(),
            1,
            n_in as isize,
            x.as_ptr(),
            n_in as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Dense int8 GEMV with AVX2: `out[v * n_out + j] = sum_i q[j][i] * x16[v * n_in + i]`.
/// Returns `false` (and leaves `out` alone) when AVX2 is missing or a length is inconsistent.
pub(crate) fn gemv_i8_avx2(q: &[i8], n_out: usize, n_in: usize, x16: &[i16], nv: usize, out: &mut [i32]) -> bool {
    let ok = n_out.checked_mul(n_in) == Some(q.len())
        && nv.checked_mul(n_in) == Some(x16.len())
        && nv.checked_mul(n_out) == Some(out.len());
    if !ok || !avx2_available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX2 was detected at run time just above; the lengths of q, x16 and out were
        // checked against n_out, n_in and nv, which is all `x86::gemv_i8` relies on.
        unsafe { x86::gemv_i8(q, n_out, n_in, x16, nv, out) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Build one vector's CREW product tables with AVX2: for each column `(input, offset, size)`,
/// the i16 products `a[input] * uniques[offset / 2 + k]` for `k < size`, their low bytes at
/// `tables[offset + k]` and high bytes at `tables[offset + size + k]`. Returns `false` (and
/// leaves `tables` alone) when AVX2 is missing or an extent is out of range.
pub(crate) fn crew_tables_avx2(columns: &[(usize, usize, usize)], uniques: &[i8], a: &[i8], tables: &mut [u8]) -> bool {
    let ok = columns.iter().all(|&(input, offset, size)| {
        input < a.len()
            && size % 16 == 0
            && offset % 2 == 0
            && offset.checked_add(2 * size).is_some_and(|e| e <= tables.len())
            && (offset / 2).checked_add(size).is_some_and(|e| e <= uniques.len())
    });
    if !ok || !avx2_available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX2 was detected at run time just above; every column's input, unique values
        // and table extents were checked against the slices' lengths, and sizes are multiples
        // of 16, which is all `x86::crew_tables` relies on.
        unsafe { x86::crew_tables(columns, uniques, a, tables) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The arguments of [`crew_avx2`] (see `crew.rs` for the layout).
pub(crate) struct CrewArgs<'a> {
    /// Byte indices `[block][column][32]`.
    pub idx: &'a [u8],
    pub blocks: usize,
    /// Per column: byte offset of its low-byte table; the high-byte table follows it.
    pub offsets: &'a [usize],
    /// `[vector][table_bytes]` product tables.
    pub tables: &'a [u8],
    pub table_bytes: usize,
    /// Per chunk of up to [`CREW_MAX_VECTORS`] vectors: its i16-exact segments of columns.
    pub chunks: &'a [Vec<super::crew::Segment>],
    /// Per vector: the sum of the products of the single-valued columns.
    pub consts: &'a [i32],
    pub n_out: usize,
    /// `[vector][n_out]`.
    pub out: &'a mut [i32],
}

/// The CREW kernel with AVX2. Returns `false` (and leaves `out` alone) when AVX2 is missing or
/// any length, offset or segment is inconsistent.
pub(crate) fn crew_avx2(a: &mut CrewArgs) -> bool {
    if !avx2_available() || !crew_args_ok(a) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX2 was detected at run time just above, and `crew_args_ok` checked every
        // index block, table offset (plus the size of every sub-table the kernel reads for the
        // column's width), output row and chunk that `x86::crew` addresses.
        unsafe { x86::crew(a) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Everything `x86::crew` relies on, checked up front.
fn crew_args_ok(a: &CrewArgs) -> bool {
    let nv = a.consts.len();
    let ncols = a.offsets.len();
    if nv == 0
        || a.n_out == 0
        || a.blocks.checked_mul(super::crew::BLOCK) < Some(a.n_out)
        || a.blocks.checked_mul(ncols).and_then(|n| n.checked_mul(super::crew::BLOCK)) != Some(a.idx.len())
        || nv.checked_mul(a.table_bytes) != Some(a.tables.len())
        || nv.checked_mul(a.n_out) != Some(a.out.len())
        || a.chunks.len() != nv.div_ceil(CREW_MAX_VECTORS)
    {
        return false;
    }
    a.chunks.iter().all(|segs| {
        // Segments must cover every column exactly once, in order (so that no column is lost),
        // and each column's tables must lie inside the per-vector table buffer.
        let mut next = 0;
        segs.iter().all(|s| {
            let size = 16usize << s.sub_log2;
            let fits = s.sub_log2 <= 4
                && s.start == next
                && s.start < s.end
                && s.end <= ncols
                && a.offsets[s.start..s.end]
                    .iter()
                    .all(|&o| o.checked_add(2 * size).is_some_and(|e| e <= a.table_bytes));
            next = s.end;
            fits
        }) && next == ncols
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::crew::{Segment, BLOCK};
    use super::{CrewArgs, CREW_MAX_VECTORS};
    use std::arch::x86_64::*;

    /// Horizontal sum of eight i32 lanes.
    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// Rows `row0..row0+NR` against vectors `v0..v0+NV`.
    ///
    /// Safety: AVX2 available; `q` holds `n_out * n_in` weights, `x` `nv * n_in` inputs and `out`
    /// `nv * n_out` outputs with `row0 + NR <= n_out` and `v0 + NV <= nv`.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn i8_block<const NR: usize, const NV: usize>(
        q: *const i8,
        n_in: usize,
        row0: usize,
        x: *const i16,
        v0: usize,
        out: *mut i32,
        n_out: usize,
    ) {
        let full = n_in / 16 * 16;
        let mut acc = [[_mm256_setzero_si256(); NV]; NR];
        let mut k = 0;
        while k < full {
            let mut w = [_mm256_setzero_si256(); NR];
            for r in 0..NR {
                // SAFETY: (row0 + r) * n_in + k + 16 <= n_out * n_in since k + 16 <= n_in.
                w[r] = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(q.add((row0 + r) * n_in + k) as *const __m128i) });
            }
            for v in 0..NV {
                // SAFETY: (v0 + v) * n_in + k + 16 <= nv * n_in since k + 16 <= n_in.
                let xv = unsafe { _mm256_loadu_si256(x.add((v0 + v) * n_in + k) as *const __m256i) };
                for r in 0..NR {
                    acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(w[r], xv));
                }
            }
            k += 16;
        }
        for r in 0..NR {
            for v in 0..NV {
                let mut s = hsum(acc[r][v]);
                for i in full..n_in {
                    // SAFETY: i < n_in, rows and vectors in range as above.
                    let (wq, xi) = unsafe { (*q.add((row0 + r) * n_in + i), *x.add((v0 + v) * n_in + i)) };
                    s = s.wrapping_add(wq as i32 * xi as i32);
                }
                // SAFETY: (v0 + v) * n_out + row0 + r < nv * n_out.
                unsafe { *out.add((v0 + v) * n_out + row0 + r) = s };
            }
        }
    }

    /// Safety: AVX2 available; `q.len() == n_out * n_in`, `x.len() == nv * n_in`,
    /// `out.len() == nv * n_out`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gemv_i8(q: &[i8], n_out: usize, n_in: usize, x: &[i16], nv: usize, out: &mut [i32]) {
        let (qp, xp, op) = (q.as_ptr(), x.as_ptr(), out.as_mut_ptr());
        let mut row = 0;
        while row < n_out {
            let nr = if n_out - row >= 4 { 4 } else { 1 };
            let mut v = 0;
            while v < nv {
                let pair = nv - v >= 2;
                // SAFETY: row + nr <= n_out and v + (1 or 2) <= nv; lengths per the contract.
                unsafe {
                    match (nr, pair) {
                        (4, true) => i8_block::<4, 2>(qp, n_in, row, xp, v, op, n_out),
                        (4, false) => i8_block::<4, 1>(qp, n_in, row, xp, v, op, n_out),
                        (_, true) => i8_block::<1, 2>(qp, n_in, row, xp, v, op, n_out),
                        (_, false) => i8_block::<1, 1>(qp, n_in, row, xp, v, op, n_out),
                    }
                }
                v += if pair { 2 } else { 1 };
            }
            row += nr;
        }
    }

    /// Safety: AVX2 available and the extents checked by `super::crew_tables_avx2`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn crew_tables(columns: &[(usize, usize, usize)], uniques: &[i8], a: &[i8], tables: &mut [u8]) {
        // Within each 128-bit lane: the low bytes of the lane's 8 products, then the high bytes.
        let split = _mm256_setr_epi8(
            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
        );
        let (u, t) = (uniques.as_ptr(), tables.as_mut_ptr());
        for &(input, offset, size) in columns {
            let x = _mm256_set1_epi16(a[input] as i16);
            for k in (0..size).step_by(16) {
                // SAFETY: offset / 2 + k + 16 <= offset / 2 + size <= uniques.len().
                let w = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(u.add(offset / 2 + k) as *const __m128i) });
                // |a * w| <= 128 * 128 = 16384: the i16 products are exact.
                let p = _mm256_shuffle_epi8(_mm256_mullo_epi16(w, x), split);
                // Quadwords: lane 0 low bytes, lane 1 low bytes, lane 0 high bytes, lane 1 high bytes.
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(p);
                // SAFETY: offset + size + k + 16 <= offset + 2 * size <= tables.len().
                unsafe {
                    _mm_storeu_si128(t.add(offset + k) as *mut __m128i, _mm256_castsi256_si128(p));
                    _mm_storeu_si128(t.add(offset + size + k) as *mut __m128i, _mm256_extracti128_si256::<1>(p));
                }
            }
        }
    }

    /// Look up the low and high bytes of 32 products: `idx` holds byte indices below
    /// `16 << S`; `tab` points at the column's low-byte table, the high-byte table follows it.
    ///
    /// Safety: AVX2 available; `tab .. tab + 2 * (16 << S)` is readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn lookup<const S: u32>(tab: *const u8, idx: __m256i) -> (__m256i, __m256i) {
        let size = 16usize << S;
        if S == 4 {
            // 8-bit indices: two 128-entry halves (7-bit lookups), selected by bit 7. This also
            // keeps bit 7 clear in the indices vpshufb sees (it zeroes such bytes).
            let low7 = _mm256_and_si256(idx, _mm256_set1_epi8(0x7f));
            // SAFETY: each half's low table spans 128 bytes at tab and tab + 128, its high table
            // the same at + 256: all within the 512 bytes of the column's tables.
            let (a, b) = unsafe { (lookup_at::<3>(tab, size, low7), lookup_at::<3>(tab.add(128), size, low7)) };
            return (_mm256_blendv_epi8(a.0, b.0, idx), _mm256_blendv_epi8(a.1, b.1, idx));
        }
        // SAFETY: the high-byte table starts `size` bytes after the low one.
        unsafe { lookup_at::<S>(tab, size, idx) }
    }

    /// As [`lookup`] for `S <= 3`, with the high-byte table `hi` bytes after the low-byte one.
    ///
    /// Safety: AVX2 available; `tab .. tab + 16 << S` and `tab + hi .. tab + hi + 16 << S` are
    /// readable; every index is below `16 << S` (so bit 7 is clear).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn lookup_at<const S: u32>(tab: *const u8, hi: usize, idx: __m256i) -> (__m256i, __m256i) {
        let n = 1usize << S;
        // Sub-tables are selected by index bits 4, 5, 6: each moved to bit 7 of its byte (a
        // 16-bit shift keeps each byte's bits within the byte for these counts) for vpblendvb.
        let masks = [_mm256_slli_epi16::<3>(idx), _mm256_slli_epi16::<2>(idx), _mm256_slli_epi16::<1>(idx)];
        // Blend as soon as a pair is complete (a binary counter), so that at most S + 1 partial
        // results per byte table are live and everything stays in registers.
        let mut stack = [(_mm256_setzero_si256(), _mm256_setzero_si256()); 4];
        let mut depth = 0;
        for s in 0..n {
            // SAFETY: 16 * s + 16 <= 16 << S: inside both tables.
            let (tl, th) = unsafe {
                (
                    _mm_loadu_si128(tab.add(16 * s) as *const __m128i),
                    _mm_loadu_si128(tab.add(hi + 16 * s) as *const __m128i),
                )
            };
            let mut r = (
                _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(tl), idx),
                _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(th), idx),
            );
            let mut level = 0;
            while s >> level & 1 == 1 {
                depth -= 1;
                let (l0, h0) = stack[depth];
                r = (_mm256_blendv_epi8(l0, r.0, masks[level]), _mm256_blendv_epi8(h0, r.1, masks[level]));
                level += 1;
            }
            stack[depth] = r;
            depth += 1;
        }
        stack[0]
    }

    /// One segment of columns for one row block and `NV` vectors: i16 sums, then widened into
    /// `acc` (`NV` blocks of 32 i32).
    ///
    /// Safety: AVX2 available; `idx` points at the block's indices of column 0 (columns
    /// `seg.start..seg.end` readable, 32 bytes each); `tabs[v] + offsets[c]` readable for
    /// `2 * (16 << S)` bytes for every column of the segment.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn segment<const NV: usize, const S: u32>(
        idx: *const u8,
        offsets: &[usize],
        seg: Segment,
        tabs: &[*const u8; CREW_MAX_VECTORS],
        acc: &mut [[i32; BLOCK]; CREW_MAX_VECTORS],
    ) {
        let mut a16 = [[_mm256_setzero_si256(); 2]; NV];
        for c in seg.start..seg.end {
            // SAFETY: column c of this block is in range (checked in crew_args_ok).
            let ix = unsafe { _mm256_loadu_si256(idx.add(c * BLOCK) as *const __m256i) };
            let o = offsets[c];
            for v in 0..NV {
                // SAFETY: offsets[c] + 2 * (16 << S) <= table_bytes for this segment's columns.
                let (lo, hi) = unsafe { lookup::<S>(tabs[v].add(o), ix) };
                // Bytes 0-7 and 16-23 of (lo, hi) interleave into the i16 products of outputs
                // 0-7 | 16-23, bytes 8-15 and 24-31 into those of outputs 8-15 | 24-31.
                a16[v][0] = _mm256_add_epi16(a16[v][0], _mm256_unpacklo_epi8(lo, hi));
                a16[v][1] = _mm256_add_epi16(a16[v][1], _mm256_unpackhi_epi8(lo, hi));
            }
        }
        for v in 0..NV {
            let parts = [
                (0, _mm256_castsi256_si128(a16[v][0])),
                (16, _mm256_extracti128_si256::<1>(a16[v][0])),
                (8, _mm256_castsi256_si128(a16[v][1])),
                (24, _mm256_extracti128_si256::<1>(a16[v][1])),
            ];
            for (at, part) in parts {
                let p = acc[v][at..at + 8].as_mut_ptr() as *mut __m256i;
                // SAFETY: `p` addresses acc[v][at..at + 8], eight i32 in bounds (slice checked).
                unsafe { _mm256_storeu_si256(p, _mm256_add_epi32(_mm256_loadu_si256(p), _mm256_cvtepi16_epi32(part))) };
            }
        }
    }

    /// Safety: AVX2 available and `super::crew_args_ok(a)`.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::needless_range_loop)]
    pub(super) unsafe fn crew(a: &mut CrewArgs) {
        let nv = a.consts.len();
        let ncols = a.offsets.len();
        let mut acc = [[0i32; BLOCK]; CREW_MAX_VECTORS];
        for blk in 0..a.blocks {
            let idx = a.idx[blk * ncols * BLOCK..].as_ptr();
            let rows = blk * BLOCK..((blk + 1) * BLOCK).min(a.n_out);
            for (ch, segs) in a.chunks.iter().enumerate() {
                let v0 = ch * CREW_MAX_VECTORS;
                let nvc = (nv - v0).min(CREW_MAX_VECTORS);
                let mut tabs = [std::ptr::null::<u8>(); CREW_MAX_VECTORS];
                for (v, t) in tabs.iter_mut().enumerate().take(nvc) {
                    *t = a.tables[(v0 + v) * a.table_bytes..].as_ptr();
                }
                for v in 0..nvc {
                    acc[v] = [a.consts[v0 + v]; BLOCK];
                }
                for &s in segs {
                    // SAFETY: crew_args_ok checked the segment's columns and table extents for
                    // its width, and `tabs[..nvc]` point at the chunk's vectors' tables.
                    unsafe {
                        match (nvc, s.sub_log2) {
                            (1, 0) => segment::<1, 0>(idx, a.offsets, s, &tabs, &mut acc),
                            (1, 1) => segment::<1, 1>(idx, a.offsets, s, &tabs, &mut acc),
                            (1, 2) => segment::<1, 2>(idx, a.offsets, s, &tabs, &mut acc),
                            (1, 3) => segment::<1, 3>(idx, a.offsets, s, &tabs, &mut acc),
                            (1, _) => segment::<1, 4>(idx, a.offsets, s, &tabs, &mut acc),
                            (2, 0) => segment::<2, 0>(idx, a.offsets, s, &tabs, &mut acc),
                            (2, 1) => segment::<2, 1>(idx, a.offsets, s, &tabs, &mut acc),
                            (2, 2) => segment::<2, 2>(idx, a.offsets, s, &tabs, &mut acc),
                            (2, 3) => segment::<2, 3>(idx, a.offsets, s, &tabs, &mut acc),
                            (2, _) => segment::<2, 4>(idx, a.offsets, s, &tabs, &mut acc),
                            (3, 0) => segment::<3, 0>(idx, a.offsets, s, &tabs, &mut acc),
                            (3, 1) => segment::<3, 1>(idx, a.offsets, s, &tabs, &mut acc),
                            (3, 2) => segment::<3, 2>(idx, a.offsets, s, &tabs, &mut acc),
                            (3, 3) => segment::<3, 3>(idx, a.offsets, s, &tabs, &mut acc),
                            (3, _) => segment::<3, 4>(idx, a.offsets, s, &tabs, &mut acc),
                            (_, 0) => segment::<4, 0>(idx, a.offsets, s, &tabs, &mut acc),
                            (_, 1) => segment::<4, 1>(idx, a.offsets, s, &tabs, &mut acc),
                            (_, 2) => segment::<4, 2>(idx, a.offsets, s, &tabs, &mut acc),
                            (_, 3) => segment::<4, 3>(idx, a.offsets, s, &tabs, &mut acc),
                            (_, _) => segment::<4, 4>(idx, a.offsets, s, &tabs, &mut acc),
                        }
                    }
                }
                for v in 0..nvc {
                    let o = (v0 + v) * a.n_out;
                    a.out[o + rows.start..o + rows.end].copy_from_slice(&acc[v][..rows.len()]);
                }
            }
        }
    }
}
