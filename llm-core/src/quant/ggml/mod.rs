//! GGML block formats run as stored: a GGUF tensor's blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
//! the K-quants Q2_K..Q6_K) are kept byte for byte, and `x · Wᵀ` is computed from them by
//! quantizing each input row once to 8-bit blocks ([`act`]) and taking integer dot products
//! per block ([`dot`]), as llama.cpp's CPU backend does. Output rows are split across threads.

pub mod act;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod gemm;
pub mod dot;
#[cfg(target_arch = "x86_64")]
mod q8k;
#[cfg(target_arch = "x86_64")]
mod tile;

use rayon::prelude::*;

use super::kernels::multiversion;

pub use act::{ActRow, ActRowK, ActTile, QuantizedRow, TILE};
pub use dot::{block_elems, pairs_with_q8_k};

use crate::error::{LlmError, Result};
use crate::weights::gguf::quants::{self, GgmlType};

/// A weight `[d_out, d_in]` held in a GGML block format, rows of whole blocks.
#[derive(Clone)]
pub struct GgmlWeight {
    /// Output features (rows).
    pub d_out: usize,
    /// Input features (a multiple of the block size).
    pub d_in: usize,
    /// The block type.
    pub ty: GgmlType,
    data: Vec<u8>,
    row_bytes: usize,
    force_scalar: bool,
}

/// `x · Wᵢᵀ` for several weights of the same input width (a layer's Q, K and V projections, or
/// its gate and up): the input rows are quantized once and every weight's output rows share one
/// parallel region, which saves a thread-pool wake-up per weight in a decode step. Returns
/// `[rows, d_out_i]` per weight, each exactly what [`GgmlWeight::matmul`] returns.
///
/// # Panics
/// If the weights differ in `d_in` or `x.len() != rows * d_in` (callers check shapes).
pub fn matmul_group(weights: &[&GgmlWeight], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
    let Some(first) = weights.first() else { return vec![] };
    let d_in = first.d_in;
    assert!(weights.iter().all(|w| w.d_in == d_in) && x.len() == rows * d_in, "x and every weight must share d_in");
    if rows == 0 {
        return weights.iter().map(|_| vec![]).collect();
    }
    let tiled = weights.iter().any(|w| simd_kernels(w.ty, w.force_scalar).is_some_and(|k| k.tile.is_some()));
    let prompt = rows >= GEMM_MIN_ROWS && weights.iter().all(|w| w.prompt_kernel());
    let kinds = ActKinds::of(weights.iter().map(|w| w.ty));
    let acts = Acts::new(x, d_in, kinds, tiled, prompt);
    let bytes: usize = weights.iter().map(|w| w.data.len()).sum();
    let d_outs: Vec<usize> = weights.iter().map(|w| w.d_out).collect();
    fill_group(&d_outs, rows, bytes * rows < SERIAL_BYTES, |i, first, cols| weights[i].rows_dot(first, &acts, cols))
}

/// `[rows, d_out_i]` per output `i`, computed by `task(i, first, cols)`, which fills `cols`
/// (`[n, rows]`: output rows `first..first + n` of output `i` against every input row). Tasks
/// take a few output rows each over all the outputs, in parallel unless `serial`, and each
/// writes its columns into the results itself.
fn fill_group(d_outs: &[usize], rows: usize, serial: bool, task: impl Fn(usize, usize, &mut [f32]) + Sync) -> Vec<Vec<f32>> {
    let per_task = rows_per_task(d_outs.iter().sum());
    let tasks: Vec<(usize, usize, usize)> = d_outs
        .iter()
        .enumerate()
        .flat_map(|(i, &d)| (0..d).step_by(per_task).map(move |r| (i, r, per_task.min(d - r))))
        .collect();
    let mut outs: Vec<Vec<f32>> = d_outs.iter().map(|&d| vec![0f32; d * rows]).collect();
    let targets: Vec<Target> = outs.iter_mut().map(|o| Target(o.as_mut_ptr(), o.len())).collect();
    let run = |&(i, first, n): &(usize, usize, usize)| {
        let mut cols = vec![0f32; n * rows];
        task(i, first, &mut cols);
        // SAFETY: task `(i, first, n)` alone writes columns `first..first + n` of output `i`
        // (the tasks split each output's rows without overlap), and `outs` outlives the tasks.
        unsafe { targets[i].write_columns(d_outs[i], first, rows, &cols) };
    };
    if serial {
        tasks.iter().for_each(run);
    } else {
        tasks.par_iter().for_each(run);
    }
    outs
}

/// A `[rows, d_out]` result (pointer, length) that parallel tasks fill at disjoint columns.
struct Target(*mut f32, usize);

// SAFETY: the tasks that share a `Target` write disjoint elements (see `fill_group`).
unsafe impl Sync for Target {}
unsafe impl Send for Target {}

impl Target {
    /// Writes `cols` (`[n, rows]`) as columns `first..first + n` of the `[rows, d_out]` result.
    ///
    /// # Safety
    /// No other thread writes these columns at the same time.
    unsafe fn write_columns(&self, d_out: usize, first: usize, rows: usize, cols: &[f32]) {
        assert!(rows * d_out <= self.1 && first + cols.len() / rows.max(1) <= d_out, "columns inside the result");
        for (j, col) in cols.chunks_exact(rows).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                *self.0.add(r * d_out + first + j) = v;
            }
        }
    }
}

/// Below this much work (weight bytes times input rows) a matmul runs on the calling thread:
/// waking the pool costs more than the other threads save (SmolLM2's K and V projections,
/// 69 KB each, run faster alone).
const SERIAL_BYTES: usize = 96 * 1024;

/// Output rows one thread takes at a time.
const ROWS_PER_TASK: usize = 16;

impl GgmlWeight {
    /// Wraps the blocks of a `[d_out, d_in]` tensor of type `ty` (`data`: `d_out` rows of
    /// `d_in / block` blocks). `tensor` names it in errors.
    pub fn new(tensor: &str, ty: GgmlType, d_out: usize, d_in: usize, data: Vec<u8>) -> Result<Self> {
        let bad = |message: String| Err(LlmError::Quant { tensor: tensor.into(), message });
        let (Some(block), Some((_, block_bytes))) = (block_elems(ty), ty.block_layout()) else {
            return bad(format!("{} is not a quantized block type we run", ty.name()));
        };
        if !d_in.is_multiple_of(block) {
            return bad(format!("row length {d_in} is not a multiple of {}'s block of {block}", ty.name()));
        }
        let row_bytes = d_in / block * block_bytes;
        if d_out.checked_mul(row_bytes) != Some(data.len()) {
            return bad(format!("{} bytes do not hold [{d_out}, {d_in}] of {}", data.len(), ty.name()));
        }
        Ok(Self { d_out, d_in, ty, data, row_bytes, force_scalar: false })
    }

    /// The same weight with its rows reordered: row `r` of the result is row `source(r)`.
    pub fn with_rows(self, source: impl Fn(usize) -> usize) -> Self {
        let mut data = vec![0u8; self.data.len()];
        for (r, dst) in data.chunks_exact_mut(self.row_bytes).enumerate() {
            let s = source(r);
            dst.copy_from_slice(&self.data[s * self.row_bytes..(s + 1) * self.row_bytes]);
        }
        Self { data, ..self }
    }

    /// The stored blocks of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// The exact float weight, `[d_out, d_in]` row-major (gguf-py's dequantization).
    pub fn dequantize(&self) -> Vec<f32> {
        quants::dequantize(self.ty, &self.data)
    }

    /// The exact float values of row `r`: `[d_in]`.
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        quants::dequantize(self.ty, self.row(r))
    }

    /// Bytes of the blocks.
    pub fn storage_bytes(&self) -> usize {
        self.data.len()
    }

    /// `x · Wᵀ` through the integer dot products. x: `[rows, d_in]` -> `[rows, d_out]`.
    ///
    /// # Panics
    /// If `x.len() != rows * d_in` (a caller's bug; [`crate::quant::QuantLinear`] checks shapes).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.d_in, "x must be [rows, d_in]");
        if rows == 0 || self.d_out == 0 {
            return vec![0f32; rows * self.d_out];
        }
        let tiled = simd_kernels(self.ty, self.force_scalar).is_some_and(|k| k.tile.is_some());
        let kinds = ActKinds::of([self.ty]);
        let acts = Acts::new(x, self.d_in, kinds, tiled, rows >= GEMM_MIN_ROWS && self.prompt_kernel());
        let serial = self.data.len() * rows < SERIAL_BYTES;
        fill_group(&[self.d_out], rows, serial, |_, first, cols| self.rows_dot(first, &acts, cols)).remove(0)
    }

    /// `x · Wᵀ` with the input kept in f32 (each block's codes widened in registers, no 8-bit
    /// rounding of `x`), for Q8_0 weights; `None` for the other types. The tied LM head runs
    /// this way: logits are where an input rounded to 8 bits flips near-tied greedy picks (the
    /// README's answer among them), and a Q8_0 table costs the same bytes either way.
    /// x: `[rows, d_in]` -> `[rows, d_out]`.
    ///
    /// # Panics
    /// If `x.len() != rows * d_in`.
    pub fn matmul_f32_input(&self, x: &[f32], rows: usize) -> Option<Vec<f32>> {
        if self.ty != GgmlType::Q8_0 {
            return None;
        }
        assert_eq!(x.len(), rows * self.d_in, "x must be [rows, d_in]");
        if rows == 0 || self.d_out == 0 {
            return Some(vec![0f32; rows * self.d_out]);
        }
        let kernels = if self.force_scalar { None } else { F32Kernels::new() };
        let out = fill_group(&[self.d_out], rows, false, |_, first, cols| match kernels {
            Some(k) => q8_0_f32_rows(k, |i| self.row(first + i), x, self.d_in, cols),
            None => {
                for (i, col) in cols.chunks_exact_mut(rows).enumerate() {
                    for (y, xr) in col.iter_mut().zip(x.chunks_exact(self.d_in)) {
                        *y = q8_0_f32_dot(self.row(first + i), xr);
                    }
                }
            }
        });
        Some(out.into_iter().next().expect("one output"))
    }

    /// Output rows `first..` (as many as `out` holds, `[n, rows]`) against every input row,
    /// through this CPU's fastest kernels for the type.
    fn rows_dot(&self, first: usize, acts: &Acts, out: &mut [f32]) {
        if pairs_with_q8_k(self.ty) {
            return match k_kernels(self.ty, self.force_scalar) {
                Some(k) => rows_dot_k_simd(k, &self.data, self.row_bytes, first, &acts.rows_k, out),
                None => rows_dot_k(self.ty, &self.data, self.row_bytes, first, &acts.rows_k, out),
            };
        }
        #[cfg(target_arch = "x86_64")]
        if self.prompt_kernel() && !acts.tiles16.is_empty() {
            let rows = acts.rows.len();
            let mut w: [gemm::Unpacked; 4] = Default::default();
            // Four weight rows at a time (they share the loads of each tile), then the rest.
            for (g, cols) in out.chunks_mut(4 * rows).enumerate() {
                let n = cols.len() / rows;
                for (j, u) in w.iter_mut().enumerate().take(n) {
                    u.fill(self.ty, self.row(first + 4 * g + j));
                }
                for (ti, t) in acts.tiles16.iter().enumerate() {
                    let at = ti * gemm::ROWS;
                    if n == 4 {
                        for (j, y) in gemm::dot4([&w[0], &w[1], &w[2], &w[3]], t).iter().enumerate() {
                            cols[j * rows + at..j * rows + at + t.rows].copy_from_slice(&y[..t.rows]);
                        }
                    } else {
                        for (j, u) in w.iter().enumerate().take(n) {
                            cols[j * rows + at..j * rows + at + t.rows].copy_from_slice(&gemm::dot(u, t)[..t.rows]);
                        }
                    }
                }
            }
            return;
        }
        match simd_kernels(self.ty, self.force_scalar) {
            Some(k) => rows_dot_simd(k, &self.data, self.row_bytes, first, acts, out),
            None => rows_dot(self.ty, &self.data, self.row_bytes, first, &acts.rows, out),
        }
    }

    /// Whether [`crate::quant::QuantExecution::Auto`] runs a product of `rows` input rows through
    /// these kernels: up to [`crate::quant::GGML_FUSED_MAX_ROWS`] rows (the integer kernels),
    /// and from [`GEMM_MIN_ROWS`] on where the CPU has the prompt kernel of the type; between
    /// the two, and past the first elsewhere, the weight is dequantized for an f32 matmul.
    pub fn fused_for(&self, rows: usize) -> bool {
        rows <= crate::quant::GGML_FUSED_MAX_ROWS || (rows >= GEMM_MIN_ROWS && self.prompt_kernel())
    }

    /// Whether this CPU runs the prompt-sized kernel of this weight's type ([`gemm`]).
    fn prompt_kernel(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if !self.force_scalar {
            return gemm::supports(self.ty);
        }
        false
    }

    /// The same weight computed by the portable kernels only (the reference the SIMD kernels
    /// are tested against).
    pub fn portable(mut self) -> Self {
        self.force_scalar = true;
        self
    }
}

/// Output rows per parallel task: a few tasks per thread (rayon's fork-join costs microseconds,
/// and a decode step runs hundreds of matmuls), never fewer than [`ROWS_PER_TASK`].
fn rows_per_task(d_out: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    d_out.div_ceil(tasks).max(ROWS_PER_TASK)
}

/// Input rows from which a product runs the prompt kernels ([`gemm`]) where the weight's type
/// has them. Below, up to 32 rows, the decode kernels run (their products equal the one-row
/// kernels' bit for bit); from 33 to 63 rows the f32 matmul of the dequantized weight, which
/// keeps the activations in f32: the README's chat prompt (37 tokens) on 8-bit activations
/// answers llama.cpp's "L'Etoile" for "Paris", on the prompt kernels as on the decode kernels.
pub const GEMM_MIN_ROWS: usize = 64;

/// The input rows of a matmul, quantized once, and interleaved into tiles of [`TILE`] rows
/// where the weights have a tile kernel, or of 16 rows for the prompt kernels.
struct Acts {
    /// Every row in blocks of 32, when a weight takes them.
    rows: Vec<ActRow>,
    /// Every row in super-blocks of 256, when a weight takes them ([`pairs_with_q8_k`]).
    rows_k: Vec<ActRowK>,
    /// Tiles of rows `0..TILE * tiles.len()` (the last may be partial), when built.
    tiles: Vec<ActTile>,
    /// Tiles of 16 rows covering every row, when built for the prompt kernels.
    #[cfg(target_arch = "x86_64")]
    tiles16: Vec<gemm::Tile16>,
}

/// Rows below which a partial tile costs more than the four-row and one-row kernels (a tile
/// kernel does the work of eight rows whatever it holds, about what four rows cost apart).
const TILE_MIN_ROWS: usize = 5;

impl Acts {
    /// `x` (`[rows, d_in]`) quantized; tiled for the prompt kernels when `prompt`, else for the
    /// tile kernels when `tiled`.
    fn new(x: &[f32], d_in: usize, kinds: ActKinds, tiled: bool, prompt: bool) -> Self {
        let rows: Vec<ActRow> = if kinds.blocks { x.chunks_exact(d_in).map(ActRow::from_row).collect() } else { vec![] };
        let rows_k: Vec<ActRowK> = if kinds.super_blocks { x.chunks_exact(d_in).map(ActRowK::from_row).collect() } else { vec![] };
        #[cfg(target_arch = "x86_64")]
        if prompt {
            let tiles16 = rows.chunks(gemm::ROWS).map(gemm::Tile16::new).collect();
            return Self { rows, rows_k, tiles: vec![], tiles16 };
        }
        let _ = prompt;
        let mut tiles = vec![];
        if tiled {
            let whole = rows.len() / TILE * TILE;
            let end = if rows.len() - whole >= TILE_MIN_ROWS { rows.len() } else { whole };
            tiles = rows[..end].chunks(TILE).map(ActTile::new).collect();
        }
        Self {
            rows,
            rows_k,
            tiles,
            #[cfg(target_arch = "x86_64")]
            tiles16: vec![],
        }
    }

    /// Rows the tiles hold.
    fn tiled_rows(&self) -> usize {
        self.tiles.iter().map(|t| t.rows).sum()
    }
}

/// Which activation rows a group of weights takes: blocks of 32, super-blocks of 256, or both.
#[derive(Clone, Copy)]
struct ActKinds {
    blocks: bool,
    super_blocks: bool,
}

impl ActKinds {
    fn of(types: impl IntoIterator<Item = GgmlType>) -> Self {
        let mut k = Self { blocks: false, super_blocks: false };
        for ty in types {
            if pairs_with_q8_k(ty) {
                k.super_blocks = true;
            } else {
                k.blocks = true;
            }
        }
        k
    }
}

/// One stored row · one activation row, compiled for an instruction set.
type RowDot = unsafe fn(&[u8], &ActRow) -> f32;

/// One stored row · four activation rows (each block unpacked once), for batched decoding.
type RowDot4 = unsafe fn(&[u8], [&ActRow; 4]) -> [f32; 4];

/// Four stored rows · one activation row (four independent running sums), for a lone decode row.
type WideDot = unsafe fn([&[u8]; 4], &ActRow) -> [f32; 4];

/// One stored row · a tile of [`TILE`] activation rows.
type TileDot = unsafe fn(&[u8], &ActTile) -> [f32; TILE];

/// The SIMD kernels of a type on this CPU. The batched ones (`four`, `wide`, `tile`) give each
/// row exactly what `one` gives it, bit for bit.
#[derive(Clone, Copy)]
struct Kernels {
    one: RowDot,
    four: Option<RowDot4>,
    wide: Option<WideDot>,
    tile: Option<TileDot>,
}

/// The SIMD kernels for `ty` this CPU runs, if any (AVX2; Q4_0 and Q4_1's tile kernels through
/// AVX-512 VNNI where the CPU has it).
#[allow(unused_variables)]
fn simd_kernels(ty: GgmlType, force_scalar: bool) -> Option<Kernels> {
    #[cfg(target_arch = "x86_64")]
    if !force_scalar && avx2::available() {
        let vnni = avx2::vnni_available();
        // The `_vnni` kernels give the same bits as the AVX2 ones with one instruction for two.
        let pick = |avx2: RowDot, with_vnni: RowDot| if vnni { with_vnni } else { avx2 };
        let pick4 = |avx2: RowDot4, with_vnni: RowDot4| Some(if vnni { with_vnni } else { avx2 });
        let wide: Option<WideDot> = match ty {
            GgmlType::Q4_0 => Some(if vnni { avx2::q4_0_w4_vnni } else { avx2::q4_0_w4 }),
            GgmlType::Q4_1 => Some(if vnni { avx2::q4_1_w4_vnni } else { avx2::q4_1_w4 }),
            GgmlType::Q5_0 => Some(if vnni { avx2::q5_0_w4_vnni } else { avx2::q5_0_w4 }),
            GgmlType::Q5_1 => Some(if vnni { avx2::q5_1_w4_vnni } else { avx2::q5_1_w4 }),
            GgmlType::Q8_0 => Some(if vnni { avx2::q8_0_w4_vnni } else { avx2::q8_0_w4 }),
            _ => None,
        };
        let (one, four): (RowDot, Option<RowDot4>) = match ty {
            GgmlType::Q4_0 => (pick(avx2::q4_0, avx2::q4_0_vnni), pick4(avx2::q4_0_x4, avx2::q4_0_x4_vnni)),
            GgmlType::Q4_1 => (pick(avx2::q4_1, avx2::q4_1_vnni), pick4(avx2::q4_1_x4, avx2::q4_1_x4_vnni)),
            GgmlType::Q5_0 => (pick(avx2::q5_0, avx2::q5_0_vnni), None),
            GgmlType::Q5_1 => (pick(avx2::q5_1, avx2::q5_1_vnni), None),
            GgmlType::Q8_0 => (pick(avx2::q8_0, avx2::q8_0_vnni), None),
            GgmlType::Q2_K => (avx2::q2_k, None),
            GgmlType::Q3_K => (avx2::q3_k, None),
            _ => return None,
        };
        let tile: Option<TileDot> = match ty {
            GgmlType::Q4_0 => Some(if vnni { tile::q4_0_vnni } else { tile::q4_0 }),
            GgmlType::Q4_1 => Some(if vnni { tile::q4_1_vnni } else { tile::q4_1 }),
            _ => None,
        };
        return Some(Kernels { one, four, wide, tile });
    }
    None
}

/// One stored row · one activation row of 256-value blocks, compiled for an instruction set.
type RowDotK = unsafe fn(&[u8], &ActRowK) -> f32;

/// Four stored rows · one activation row of 256-value blocks.
type WideDotK = unsafe fn([&[u8]; 4], &ActRowK) -> [f32; 4];

/// The kernels of a type that [`pairs_with_q8_k`] on this CPU: `wide` gives each row exactly
/// what `one` gives it, bit for bit.
#[derive(Clone, Copy)]
struct KKernels {
    one: RowDotK,
    wide: WideDotK,
}

/// The SIMD kernels of Q4_K, Q5_K or Q6_K this CPU runs, if any (AVX2, or AVX-512 VNNI).
#[allow(unused_variables)]
fn k_kernels(ty: GgmlType, force_scalar: bool) -> Option<KKernels> {
    #[cfg(target_arch = "x86_64")]
    if !force_scalar && avx2::available() {
        let vnni = avx2::vnni_available();
        let (one, wide): (RowDotK, WideDotK) = match (ty, vnni) {
            (GgmlType::Q4_K, false) => (q8k::q4_k, q8k::q4_k_w4),
            (GgmlType::Q4_K, true) => (q8k::q4_k_vnni, q8k::q4_k_w4_vnni),
            (GgmlType::Q5_K, false) => (q8k::q5_k, q8k::q5_k_w4),
            (GgmlType::Q5_K, true) => (q8k::q5_k_vnni, q8k::q5_k_w4_vnni),
            (GgmlType::Q6_K, false) => (q8k::q6_k, q8k::q6_k_w4),
            (GgmlType::Q6_K, true) => (q8k::q6_k_vnni, q8k::q6_k_w4_vnni),
            _ => return None,
        };
        return Some(KKernels { one, wide });
    }
    None
}

/// [`rows_dot_k`] through SIMD kernels: four weight rows at a time against each activation
/// row, the last few weight rows one by one.
fn rows_dot_k_simd(k: KKernels, data: &[u8], row_bytes: usize, first: usize, acts: &[ActRowK], out: &mut [f32]) {
    let rows = acts.len();
    let row = |i: usize| &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
    let n = out.len() / rows.max(1);
    let wide = n / 4 * 4;
    for i in (0..wide).step_by(4) {
        let w = [row(i), row(i + 1), row(i + 2), row(i + 3)];
        for (r, a) in acts.iter().enumerate() {
            // SAFETY: `k_kernels` returned these kernels only after checking the CPU's
            // instruction sets at run time; each weight row holds whole super-blocks of the
            // kernel's type and `a` was quantized from a row of as many values.
            let y = unsafe { (k.wide)(w, a) };
            for (j, v) in y.into_iter().enumerate() {
                out[(i + j) * rows + r] = v;
            }
        }
    }
    for i in wide..n {
        for (r, a) in acts.iter().enumerate() {
            // SAFETY: as above.
            out[i * rows + r] = unsafe { (k.one)(row(i), a) };
        }
    }
}

/// [`rows_dot`] through SIMD kernels: the tiled rows through the tile kernel, the others four
/// at a time where a four-row kernel exists, the rest one by one (four weight rows at a time
/// where a wide kernel exists).
fn rows_dot_simd(k: Kernels, data: &[u8], row_bytes: usize, first: usize, acts: &Acts, out: &mut [f32]) {
    let rows = acts.rows.len();
    let tiled = if k.tile.is_some() { acts.tiled_rows() } else { 0 };
    let batched = tiled + if k.four.is_some() { (rows - tiled) / 4 * 4 } else { 0 };
    let n = out.len() / rows.max(1);
    let mut wide_done = 0;
    if let (Some(kw), true) = (k.wide, batched < rows) {
        wide_done = n / 4 * 4;
        for i in (0..wide_done).step_by(4) {
            let w: [&[u8]; 4] = std::array::from_fn(|j| &data[(first + i + j) * row_bytes..(first + i + j + 1) * row_bytes]);
            for (r, a) in acts.rows.iter().enumerate().skip(batched) {
                // SAFETY: as for `one` below; the four rows hold as many blocks each.
                let y = unsafe { kw(w, a) };
                for (j, v) in y.into_iter().enumerate() {
                    out[(i + j) * rows + r] = v;
                }
            }
        }
    }
    for (i, col) in out.chunks_exact_mut(rows).enumerate() {
        let w = &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
        if let (Some(kt), true) = (k.tile, tiled > 0) {
            for (ys, t) in col.chunks_mut(TILE).zip(&acts.tiles) {
                // SAFETY: `simd_kernels` returned this kernel only after checking the CPU's
                // instruction sets at run time; `w` holds whole blocks of the kernel's type and
                // the tile was quantized from rows of as many values.
                let y = unsafe { kt(w, t) };
                ys[..t.rows].copy_from_slice(&y[..t.rows]);
            }
        }
        let mut done = tiled;
        if let Some(k4) = k.four {
            for (ys, a) in col[done..].chunks_exact_mut(4).zip(acts.rows[done..].chunks_exact(4)) {
                // SAFETY: as below; `simd_kernels` checked the same instruction sets.
                let y = unsafe { k4(w, [&a[0], &a[1], &a[2], &a[3]]) };
                ys.copy_from_slice(&y);
            }
            done += (rows - done) / 4 * 4;
        }
        if i < wide_done {
            continue;
        }
        for (y, a) in col[done..].iter_mut().zip(&acts.rows[done..]) {
            // SAFETY: `simd_kernels` returned this kernel only after checking at run time that
            // the CPU has its instruction set; `w` holds whole blocks of the kernel's type and
            // `a` was quantized from a row of `d_in` values, so every load is in bounds.
            *y = unsafe { (k.one)(w, a) };
        }
    }
}

multiversion! {
    fn rows_dot_k(ty: GgmlType, data: &[u8], row_bytes: usize, first: usize, acts: &[ActRowK], out: &mut [f32]) {
        let rows = acts.len();
        for (i, col) in out.chunks_exact_mut(rows).enumerate() {
            let w = &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
            for (y, a) in col.iter_mut().zip(acts) {
                *y = dot::row_dot_k(ty, w, a);
            }
        }
    }
}

multiversion! {
    fn rows_dot(ty: GgmlType, data: &[u8], row_bytes: usize, first: usize, acts: &[ActRow], out: &mut [f32]) {
        let rows = acts.len();
        for (i, col) in out.chunks_exact_mut(rows).enumerate() {
            let w = &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
            for (y, a) in col.iter_mut().zip(acts) {
                *y = dot::row_dot(ty, w, a);
            }
        }
    }
}

/// The kernels of a Q8_0 row against float rows on this CPU: AVX-512 where it has it, else
/// AVX2. Within a set, every kernel gives each pair of rows the same bits.
#[derive(Clone, Copy)]
struct F32Kernels {
    one: unsafe fn(&[u8], &[f32]) -> f32,
    /// One weight row · four input rows.
    x4: unsafe fn(&[u8], [&[f32]; 4]) -> [f32; 4],
    /// Four weight rows · one input row.
    w4: Option<unsafe fn([&[u8]; 4], &[f32]) -> [f32; 4]>,
}

impl F32Kernels {
    fn new() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if avx512::available() {
                return Some(Self { one: avx512::q8_0_f32, x4: avx512::q8_0_f32_x4, w4: Some(avx512::q8_0_f32_w4) });
            }
            if avx2::available() {
                return Some(Self { one: avx2::q8_0_f32, x4: avx2::q8_0_f32_x4, w4: None });
            }
        }
        None
    }
}

/// Weight rows `row(0..n)` · the float rows of `x` (`[rows, d_in]`) into `cols` (`[n, rows]`):
/// input rows four at a time per weight row, the rest against four weight rows at a time
/// where the set has that kernel, else one by one.
fn q8_0_f32_rows<'w>(k: F32Kernels, row: impl Fn(usize) -> &'w [u8], x: &[f32], d_in: usize, cols: &mut [f32]) {
    let rows = x.len() / d_in;
    let n = cols.len() / rows;
    let fours = rows / 4 * 4;
    let x_row = |r: usize| &x[r * d_in..(r + 1) * d_in];
    let wide = match k.w4 {
        Some(w4) if fours < rows => {
            for i in (0..n / 4 * 4).step_by(4) {
                let w: [&[u8]; 4] = std::array::from_fn(|j| row(i + j));
                for r in fours..rows {
                    // SAFETY: `F32Kernels::new` checked the CPU's instruction sets at run time;
                    // each weight row holds the Q8_0 blocks of `d_in` values.
                    let y = unsafe { w4(w, x_row(r)) };
                    for (j, v) in y.into_iter().enumerate() {
                        cols[(i + j) * rows + r] = v;
                    }
                }
            }
            n / 4 * 4
        }
        _ => 0,
    };
    for (i, col) in cols.chunks_exact_mut(rows).enumerate() {
        let w = row(i);
        for r in (0..fours).step_by(4) {
            // SAFETY: as above; each of the four input rows has `d_in` values.
            let y = unsafe { (k.x4)(w, std::array::from_fn(|j| x_row(r + j))) };
            col[r..r + 4].copy_from_slice(&y);
        }
        if i >= wide {
            for r in fours..rows {
                // SAFETY: as above.
                col[r] = unsafe { (k.one)(w, x_row(r)) };
            }
        }
    }
}

/// A Q8_0 row · a float row, portable.
fn q8_0_f32_dot(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (blk, xb) in w.chunks_exact(34).zip(x.chunks_exact(32)) {
        let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        let s: f32 = blk[2..].iter().zip(xb).map(|(&q, &v)| f32::from(q as i8) * v).sum();
        acc += d * s;
    }
    acc
}
