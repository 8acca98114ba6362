//! Chunks through the model: tokens, one forward pass per batch of chunks
//! when encoding and token-by-token steps when decoding, the arithmetic
//! coder, and the verbatim fallback. How chunks are grouped into passes is
//! decided here and only here, for each [`Backend`]; grouping changes speed
//! and memory, never results.

use super::frames::{Coded, Payload};
use super::{carried, last_tokens, verbatim_len, Stats, LANE_CHAINS};
use crate::coder::{self, Decoder, Encoder, Intervals};
use crate::container::{ChunkKind, FileHeader};
use crate::error::{Error, Result};
use crate::model::backend::{Backend, RowNet};
use crate::model::device::DeviceNet;
use crate::model::{Model, Row};
use crate::probs::{Dist, Scratch};
use rayon::prelude::*;

/// A chunk's model output before it is coded into its lane: its intervals,
/// ideal code length in bits, escapes.
type Modelled = (Intervals, f64, u64);

/// Coded chunks per lane on the CPU: as many as the decoder steps together
/// by default ([`crate::DecodeOptions::decode_group`]), so a lane costs no
/// parallelism there, while the flush and length that every chunk paid
/// before version 5 are paid once per lane (about 2.6 bytes of each 256
/// samples' 5 saved, measured: README, Measurements).
pub(crate) const LANE_CHUNKS: usize = 4;

/// Knobs that change how work is split, never the bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub batch_tokens: usize,
    pub decode_group: usize,
}
/// A chunk as the model sees it: the tokens carried from the chunk before
/// (none at a chain's start or without carry), then its own.
type Job<'a> = (&'a [u32], &'a [u32]);

/// A chunk's tokens, or None where it must be stored verbatim (the
/// tokenizer cannot reproduce it, or it exceeds the model's context with
/// the `carry` tokens before it). The decoder calls this on verbatim chunks
/// too, to rebuild device batches and carried tokens.
pub(crate) fn chunk_tokens(model: &Model, carry: u8, text: &[u8]) -> Result<Option<Vec<u32>>> {
    let max_tokens = model
        .config
        .max_position_embeddings
        .saturating_sub(1 + carry as usize);
    Ok(model
        .codec
        .encode(text)?
        .filter(|v| !v.is_empty() && v.len() <= max_tokens))
}

/// Codes each chunk's characters: tokens through one full forward pass per
/// batch of chunks, then the arithmetic coder, a lane of chunks at a time.
/// Falls back to verbatim where that is smaller or the tokenizer cannot
/// reproduce the text.
pub(crate) fn encode_chunks(
    model: &Model,
    backend: &Backend,
    h: &FileHeader,
    texts: &[&[u8]],
    force_coded: bool,
    sched: Schedule,
    stats: &mut Stats,
) -> Result<Coded> {
    let top_k = h.top_k as usize;
    // Without carry every chunk is a chain of its own.
    let (carry, chain) = (h.carry as usize, (h.chain as usize).max(1));
    let toks: Vec<Option<Vec<u32>>> = texts
        .iter()
        .map(|t| chunk_tokens(model, h.carry, t))
        .collect::<Result<_>>()?;
    let coded: Vec<usize> = (0..texts.len()).filter(|&i| toks[i].is_some()).collect();
    let seq = |i: usize| toks[i].as_deref().unwrap();
    let jobs: Vec<Job> = coded
        .iter()
        .map(|&i| (carried(&toks, i, carry, chain), seq(i)))
        .collect();
    let mut results = Vec::with_capacity(coded.len());
    match backend {
        Backend::RowWise => results = encode_rows(model, model, &jobs, sched, top_k)?,
        Backend::Integer(net) => results = encode_rows(model, &**net, &jobs, sched, top_k)?,
        Backend::Device(_) if carry > 0 => {
            return Err(Error::Model(
                "the float pass on a device carries no context across chunks".into(),
            ))
        }
        Backend::Device(net) => {
            for group in coded.chunks(device_group(model, h)) {
                let batch = group.iter().map(|&i| seq(i)).collect();
                results.extend(encode_device(model, net, batch, top_k)?);
            }
        }
    }
    let mut out: Vec<Option<Payload>> = vec![None; texts.len()];
    let mut kept = Vec::new();
    for (&i, (ivs, ideal, escapes)) in coded.iter().zip(results) {
        let n = seq(i).len();
        // The ideal length decides: a lane's bytes are not one chunk's.
        if force_coded || ideal < 8.0 * verbatim_len(texts[i].len()) as f64 {
            stats.ideal_bits += ideal;
            stats.escapes += escapes;
            stats.tokens += n as u64;
            out[i] = Some(Payload {
                kind: ChunkKind::Coded,
                tokens: n as u32,
                bytes: Vec::new(),
            });
            kept.push((i, ivs));
        }
    }
    let per_lane = match backend {
        // Chains are decoded one chunk after another, a lane's in lockstep.
        _ if carry > 0 => LANE_CHAINS,
        Backend::RowWise | Backend::Integer(_) => LANE_CHUNKS,
        // A device decodes a group of hundreds of chunks in lockstep, in
        // groups the header decides; lanes of one chunk never straddle one.
        Backend::Device(_) => 1,
    };
    let lanes: Vec<Vec<u8>> = if carry > 0 {
        // A lane is the coded chunks of `per_lane` consecutive chains.
        let span = chain * per_lane;
        let lanes: Vec<&[(usize, Intervals)]> =
            kept.chunk_by(|a, b| a.0 / span == b.0 / span).collect();
        lanes.par_iter().map(|l| code_chains(l, chain)).collect()
    } else {
        let kept: Vec<Intervals> = kept.into_iter().map(|(_, ivs)| ivs).collect();
        kept.par_chunks(per_lane).map(code_lane).collect()
    };
    stats.coded_bytes += lanes.iter().map(|l| l.len() as u64).sum::<u64>();
    stats.chunks += texts.len() as u64;
    let chunks = out
        .into_iter()
        .zip(texts)
        .map(|(p, t)| {
            p.unwrap_or_else(|| {
                stats.verbatim_chunks += 1;
                let raw = coder::pack_bits(&t.iter().map(|&c| c as u32).collect::<Vec<_>>(), 7);
                stats.verbatim_bytes += raw.len() as u64;
                Payload {
                    kind: ChunkKind::Verbatim,
                    tokens: 0,
                    bytes: raw,
                }
            })
        })
        .collect();
    Ok(Coded {
        chunks,
        lanes,
        per_lane,
    })
}

/// The row-wise backends' batches: as many whole chunks as fit in
/// `batch_tokens` (at least one) per forward pass, the passes in parallel.
fn encode_rows<N: RowNet>(
    model: &Model,
    net: &N,
    jobs: &[Job],
    sched: Schedule,
    top_k: usize,
) -> Result<Vec<Modelled>> {
    let bt = sched.batch_tokens;
    let rows_of = |j: &Job| j.0.len() + j.1.len();
    let mut batches = Vec::new();
    let mut b = 0;
    while b < jobs.len() {
        // Batching never changes a row's bits here.
        let mut e = b;
        let mut rows = 0;
        while e < jobs.len() && (e == b || rows + rows_of(&jobs[e]) <= bt) {
            rows += rows_of(&jobs[e]);
            e += 1;
        }
        batches.push(jobs[b..e].to_vec());
        b = e;
    }
    // Batches run in parallel, each on one thread: as in decoding, no
    // synchronisation inside a pass and cache-sized working sets.
    let done: Vec<Result<Vec<_>>> = batches
        .into_par_iter()
        .map(|batch| encode_batch(model, net, batch, top_k))
        .collect();
    let mut results = Vec::with_capacity(jobs.len());
    for r in done {
        results.extend(r?);
    }
    Ok(results)
}

/// One lane's stream: its chunks' tokens interleaved position by position
/// (position 0 of every chunk, then position 1, ...), as the decoder steps
/// them in lockstep.
fn code_lane(chunks: &[Intervals]) -> Vec<u8> {
    let mut enc = Encoder::new();
    interleave(chunks.iter(), &mut enc);
    enc.finish()
}

fn interleave<'a>(chunks: impl Iterator<Item = &'a Intervals> + Clone, enc: &mut Encoder) {
    let longest = chunks.clone().map(Intervals::tokens).max().unwrap_or(0);
    for pos in 0..longest {
        for c in chunks.clone().filter(|c| pos < c.tokens()) {
            c.replay(pos, enc);
        }
    }
}

/// A lane of chains (its coded chunks, by place in the frame): the chains'
/// first chunks interleaved as [`code_lane`] does, then their second ones,
/// and so on, as the decoder steps them.
fn code_chains(chunks: &[(usize, Intervals)], chain: usize) -> Vec<u8> {
    let mut enc = Encoder::new();
    for step in 0..chain {
        let at_step = chunks.iter().filter(|(i, _)| i % chain == step);
        interleave(at_step.map(|(_, ivs)| ivs), &mut enc);
    }
    enc.finish()
}

/// Chunks per device pass: as many as a 4 GiB working set allows (hidden
/// states and attention scores, with room for intermediates), from the
/// header and the model only, so that both sides form the same batches.
fn device_group(model: &Model, h: &FileHeader) -> usize {
    let c = &model.config;
    let t = (h.context as usize).min(c.max_position_embeddings - 1);
    let per_chunk = 16 * t * (c.hidden_size + c.intermediate_size + c.num_attention_heads * t);
    ((4usize << 30) / per_chunk.max(1)).max(1)
}

/// A device pass's token grid: row `s` holds the start token then the
/// chunk's tokens but the last, padded with the start token to `t` columns.
fn device_grid(start: u32, seqs: &[&[u32]], t: usize) -> Vec<u32> {
    let mut ids = vec![start; seqs.len() * t];
    for (s, toks) in seqs.iter().enumerate() {
        // Unknown rows (chunks still to decode) are empty here.
        if let Some((_, init)) = toks.split_last() {
            ids[s * t + 1..s * t + toks.len()].copy_from_slice(init);
        }
    }
    ids
}

/// The device counterpart of [`encode_batch`]: one pass over the batch's
/// grid, then the logits of each position as the decoder will take them.
fn encode_device(
    model: &Model,
    net: &DeviceNet,
    chunks: Vec<&[u32]>,
    top_k: usize,
) -> Result<Vec<Modelled>> {
    let t = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    let grid = device_grid(model.start_token, &chunks, t);
    let hidden = net.hidden(&grid, chunks.len(), t)?;
    let v = model.vocab_size();
    let mut encs: Vec<Modelled> = chunks
        .iter()
        .map(|_| (Intervals::default(), 0.0, 0))
        .collect();
    let (mut dist, mut scratch) = (Dist::default(), Scratch::default());
    for pos in 0..t {
        let logits = hidden.logits(pos)?;
        for (s, toks) in chunks.iter().enumerate() {
            if pos < toks.len() {
                Dist::from_logits(&logits[s * v..(s + 1) * v], top_k, &mut scratch, &mut dist);
                let (bits, esc) = dist.encode(&mut encs[s].0, toks[pos]);
                encs[s].0.end_token();
                encs[s].1 += bits;
                encs[s].2 += esc as u64;
            }
        }
    }
    Ok(encs)
}

/// Rows of a chunk: the start token at position 0, the carried tokens,
/// then every token but the last; row `carried.len() + i` predicts token i.
fn chunk_rows(seq: usize, start: u32, (carried, toks): Job, rows: &mut Vec<Row>) {
    for (pos, &token) in std::iter::once(&start)
        .chain(carried)
        .chain(&toks[..toks.len() - 1])
        .enumerate()
    {
        rows.push(Row { seq, pos, token });
    }
}

/// Logit rows processed at once when turning hidden states into codes; bounds
/// memory for large vocabularies.
const LOGIT_BLOCK: usize = 64;

fn encode_batch<N: RowNet>(
    model: &Model,
    net: &N,
    chunks: Vec<Job>,
    top_k: usize,
) -> Result<Vec<Modelled>> {
    let max_len = chunks
        .iter()
        .map(|c| c.0.len() + c.1.len())
        .max()
        .unwrap_or(0);
    let mut rows = Vec::new();
    for (s, &c) in chunks.iter().enumerate() {
        chunk_rows(s, model.start_token, c, &mut rows);
    }
    let mut cache = net.full_cache(chunks.len(), max_len);
    let hidden = net.forward(&mut cache, &rows)?;
    let hs = net.hidden_size();
    // Where each chunk's predicting rows start (after its carried tokens).
    let mut offsets = Vec::with_capacity(chunks.len());
    let mut at = 0;
    for (carried, toks) in &chunks {
        offsets.push(at + carried.len());
        at += carried.len() + toks.len();
    }
    chunks
        .par_iter()
        .enumerate()
        .map(|(s, &(_, toks))| {
            let mut enc = Intervals::default();
            let (mut ideal, mut escapes) = (0f64, 0u64);
            let (mut dist, mut scratch) = (Dist::default(), Scratch::following());
            let v = model.vocab_size();
            for b0 in (0..toks.len()).step_by(LOGIT_BLOCK) {
                let n = (toks.len() - b0).min(LOGIT_BLOCK);
                let r0 = offsets[s] + b0;
                let logits = net.logits(&hidden[r0 * hs..(r0 + n) * hs], n)?;
                for i in 0..n {
                    Dist::from_logits(&logits[i * v..(i + 1) * v], top_k, &mut scratch, &mut dist);
                    let (bits, esc) = dist.encode(&mut enc, toks[b0 + i]);
                    enc.end_token();
                    ideal += bits;
                    escapes += esc as u64;
                }
            }
            Ok((enc, ideal, escapes))
        })
        .collect()
}

/// The mirror of [`encode_chunks`]: coded chunks are stepped token by token,
/// the chunks of whole lanes in lockstep, through the same forward function.
pub(crate) fn decode_chunks(
    model: &Model,
    backend: &Backend,
    h: &FileHeader,
    frame: &Coded,
    lens: &[usize],
    sched: Schedule,
    stats: &mut Stats,
) -> Result<Vec<Vec<u8>>> {
    let top_k = h.top_k as usize;
    let max_tokens = model
        .config
        .max_position_embeddings
        .saturating_sub(1 + h.carry as usize);
    let payloads = &frame.chunks;
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); payloads.len()];
    let coded: Vec<usize> = (0..payloads.len())
        .filter(|&i| payloads[i].kind == ChunkKind::Coded)
        .collect();
    let per_lane = frame.per_lane.max(1);
    let lanes =
        crate::container::lane_count(payloads.iter().map(|p| p.kind), per_lane as u32, h.chain);
    if frame.lanes.len() != lanes {
        return Err(Error::Corrupt(format!(
            "{} lanes for {} coded chunks",
            frame.lanes.len(),
            coded.len()
        )));
    }
    for (i, p) in payloads.iter().enumerate() {
        let tokens = p.tokens;
        if p.kind == ChunkKind::Coded && (tokens == 0 || tokens as usize > max_tokens) {
            return Err(Error::Corrupt(format!("chunk {i} claims {tokens} tokens")));
        }
        if p.kind == ChunkKind::Verbatim {
            out[i] = coder::unpack_bits(&p.bytes, 7, lens[i])
                .into_iter()
                .map(|c| c as u8)
                .collect();
            stats.verbatim_chunks += 1;
        }
    }
    let mut decoded: Vec<(usize, Vec<u32>)> = Vec::with_capacity(coded.len());
    match backend {
        _ if h.carry > 0 => {
            // A verbatim chunk's tokens are what the next one carries.
            let known = (0..payloads.len())
                .map(|i| match payloads[i].kind {
                    ChunkKind::Verbatim => chunk_tokens(model, h.carry, &out[i]),
                    ChunkKind::Coded => Ok(None),
                })
                .collect::<Result<Vec<_>>>()?;
            let chains = Chains {
                frame,
                known,
                carry: h.carry as usize,
                chain: h.chain,
                per_lane,
            };
            decoded = match backend {
                Backend::RowWise => decode_chains(model, model, &chains, top_k)?,
                Backend::Integer(net) => decode_chains(model, &**net, &chains, top_k)?,
                Backend::Device(_) => {
                    return Err(Error::Corrupt(
                        "a float device file that carries context".into(),
                    ))
                }
            };
        }
        Backend::RowWise => {
            decoded = decode_rows(model, model, frame, &coded, per_lane, sched, top_k)?
        }
        Backend::Integer(net) => {
            decoded = decode_rows(model, &**net, frame, &coded, per_lane, sched, top_k)?
        }
        Backend::Device(net) => {
            // The encoder gives each chunk a lane of its own here (see
            // `encode_chunks`), so device groups never split a lane.
            if per_lane != 1 {
                return Err(Error::Corrupt(format!(
                    "a device frame with {per_lane} chunks per lane"
                )));
            }
            let mut lane_of = vec![None; payloads.len()];
            for (lane, &i) in coded.iter().enumerate() {
                lane_of[i] = Some(&frame.lanes[lane][..]);
            }
            // The encoder's batches: every chunk it could tokenize, those it
            // then stored verbatim included (their tokens are known here).
            let mut members = Vec::new();
            for i in 0..payloads.len() {
                let known = match payloads[i].kind {
                    ChunkKind::Coded => None,
                    ChunkKind::Verbatim => match chunk_tokens(model, h.carry, &out[i])? {
                        Some(t) => Some(t),
                        None => continue,
                    },
                };
                members.push((i, known));
            }
            for group in members.chunks(device_group(model, h)) {
                let ids = decode_device(model, net, payloads, &lane_of, group, top_k)?;
                decoded.extend(ids);
            }
        }
    }
    {
        for (i, ids) in decoded {
            let chars = model.codec.decode(&ids)?;
            if chars.len() != lens[i] {
                return Err(Error::Corrupt(format!(
                    "chunk {i} decoded to {} characters, expected {}",
                    chars.len(),
                    lens[i]
                )));
            }
            stats.tokens += ids.len() as u64;
            out[i] = chars;
        }
    }
    stats.chunks += payloads.len() as u64;
    Ok(out)
}

/// The row-wise backends' decoding: groups of whole lanes stepped in
/// lockstep, the groups in parallel.
fn decode_rows<N: RowNet>(
    model: &Model,
    net: &N,
    frame: &Coded,
    coded: &[usize],
    per_lane: usize,
    sched: Schedule,
    top_k: usize,
) -> Result<Vec<(usize, Vec<u32>)>> {
    let mut decoded = Vec::with_capacity(coded.len());
    let payloads = &frame.chunks;
    let longest = coded
        .iter()
        .map(|&i| payloads[i].tokens as usize)
        .max()
        .unwrap_or(1);
    let group = group_size(net, sched, coded.len(), longest);
    let lanes_per_group = (group / per_lane).max(1);
    let lanes: Vec<(&[u8], &[usize])> = frame
        .lanes
        .iter()
        .map(|l| &l[..])
        .zip(coded.chunks(per_lane))
        .collect();
    let groups: Vec<Result<Vec<Vec<u32>>>> = lanes
        .par_chunks(lanes_per_group)
        .map(|group| {
            let mut decs: Vec<Decoder> = group.iter().map(|&(b, _)| Decoder::new(b)).collect();
            // Lane by lane: each lane's chunks read its stream in turn.
            let chunks: Vec<(usize, usize, &[u32])> = group
                .iter()
                .enumerate()
                .flat_map(|(l, &(_, members))| {
                    members
                        .iter()
                        .map(move |&i| (l, payloads[i].tokens as usize, &[][..]))
                })
                .collect();
            let max_len = chunks.iter().map(|c| c.1 + c.2.len()).max().unwrap_or(0);
            let mut cache = net.step_cache(chunks.len(), max_len);
            lockstep(model, net, &mut cache, &mut decs, &chunks, top_k)
        })
        .collect();
    for (group, ids) in coded.chunks(per_lane * lanes_per_group).zip(groups) {
        decoded.extend(group.iter().copied().zip(ids?));
    }
    Ok(decoded)
}

/// Decoded chunks' tokens, with their places in the frame.
type Decoded = Vec<(usize, Vec<u32>)>;

/// Chunks (or chains) stepped together in one group: the requested group,
/// at most an equal share of `n` per thread (each group is stepped start to
/// finish on one thread: no synchronisation inside a step, and each
/// thread's caches stay in its share of the CPU caches), and a KV cache of
/// at most 1 GiB for sequences of `longest` positions. Grouping changes
/// speed and memory, never results.
fn group_size<N: RowNet>(net: &N, sched: Schedule, n: usize, longest: usize) -> usize {
    let per_seq = net.step_bytes_per_seq(longest).max(1);
    let per_thread = n.div_ceil(rayon::current_num_threads()).max(1);
    sched
        .decode_group
        .min(per_thread)
        .min((1usize << 30) / per_seq)
        .max(1)
}

/// A frame whose chunks carry context ([`FileHeader::carry`]): chains of
/// `chain` chunks, every `per_lane` of them with a coded chunk one lane, in
/// order.
struct Chains<'a> {
    frame: &'a Coded,
    /// Verbatim chunks' tokens (None: coded, or not tokenizable).
    known: Vec<Option<Vec<u32>>>,
    carry: usize,
    chain: u8,
    per_lane: usize,
}

/// Decodes a frame's chains: its lanes in parallel, each lane's chains
/// stepped in lockstep one chunk at a time, every chunk after the last
/// `carry` tokens of the one before it in its chain. The mirror of
/// `encode_chunks` with carry.
fn decode_chains<N: RowNet>(model: &Model, net: &N, c: &Chains, top_k: usize) -> Result<Decoded> {
    let payloads = &c.frame.chunks;
    let coded: Vec<bool> = payloads
        .iter()
        .map(|p| p.kind == ChunkKind::Coded)
        .collect();
    let chain = c.chain.max(1) as usize;
    let starts = crate::container::chain_lanes(&coded, c.per_lane as u32, c.chain);
    let longest = payloads
        .iter()
        .map(|p| p.tokens as usize)
        .max()
        .unwrap_or(0);
    let done: Vec<Result<Decoded>> = starts
        .par_iter()
        .zip(&c.frame.lanes)
        .map(|(&first, bytes)| {
            let mut dec = [Decoder::new(bytes)];
            // One cache for all the lane's steps: a chunk's rows overwrite
            // the previous chunk's from position 0, and positions past a row
            // never reach its sums (weights of zero), so nothing is cleared.
            let mut cache = net.step_cache(c.per_lane, c.carry + longest);
            // Each chain's carried tokens for its next chunk (none before
            // its first: a chain starts cold).
            let mut prev: Vec<Vec<u32>> = vec![Vec::new(); c.per_lane];
            let mut out = Vec::new();
            for step in 0..chain {
                let members: Vec<(usize, usize)> = (0..c.per_lane)
                    .map(|j| (j, first + j * chain + step))
                    .filter(|&(_, i)| i < payloads.len() && coded[i])
                    .collect();
                let chunks: Vec<(usize, usize, &[u32])> = members
                    .iter()
                    .map(|&(j, i)| (0, payloads[i].tokens as usize, &prev[j][..]))
                    .collect();
                let ids = lockstep(model, net, &mut cache, &mut dec, &chunks, top_k)?;
                // A verbatim chunk's tokens are known; a coded one's decoded.
                let mut next: Vec<Vec<u32>> = (0..c.per_lane)
                    .map(|j| match c.known.get(first + j * chain + step) {
                        Some(Some(t)) => last_tokens(t, c.carry).to_vec(),
                        _ => Vec::new(),
                    })
                    .collect();
                for (&(j, i), ids) in members.iter().zip(ids) {
                    next[j] = last_tokens(&ids, c.carry).to_vec();
                    out.push((i, ids));
                }
                prev = next;
            }
            Ok(out)
        })
        .collect();
    let mut decoded = Vec::new();
    for d in done {
        decoded.extend(d?);
    }
    Ok(decoded)
}

/// The mirror of [`encode_device`]: `group` lists the batch's chunks with
/// their tokens where known (verbatim chunks). One pass of the same grid
/// shape per position; a position's decoded token goes into the grid before
/// the next pass, and positions not yet known hold the start token, as
/// padding does in the encoder (causal masking keeps them out of row `pos`).
fn decode_device(
    model: &Model,
    net: &DeviceNet,
    payloads: &[Payload],
    lane_of: &[Option<&[u8]>],
    group: &[(usize, Option<Vec<u32>>)],
    top_k: usize,
) -> Result<Vec<(usize, Vec<u32>)>> {
    let counts: Vec<usize> = group
        .iter()
        .map(|(i, known)| {
            known
                .as_ref()
                .map_or(payloads[*i].tokens as usize, |k| k.len())
        })
        .collect();
    let t = counts.iter().copied().max().unwrap_or(0);
    let known: Vec<&[u32]> = group
        .iter()
        .map(|(_, k)| k.as_deref().unwrap_or(&[]))
        .collect();
    let mut grid = device_grid(model.start_token, &known, t.max(1));
    let mut decs: Vec<Option<Decoder>> = group
        .iter()
        .map(|(i, k)| {
            k.is_none()
                .then(|| Decoder::new(lane_of[*i].unwrap_or_default()))
        })
        .collect();
    let mut ids: Vec<Vec<u32>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
    let v = model.vocab_size();
    let (mut dist, mut scratch) = (Dist::default(), Scratch::default());
    let last = (0..group.len())
        .filter(|&s| decs[s].is_some())
        .map(|s| counts[s])
        .max()
        .unwrap_or(0);
    for pos in 0..last {
        let hidden = net.hidden(&grid, group.len(), t)?;
        let logits = hidden.logits(pos)?;
        for s in 0..group.len() {
            let Some(d) = decs[s].as_mut().filter(|_| pos < counts[s]) else {
                continue;
            };
            Dist::from_logits(&logits[s * v..(s + 1) * v], top_k, &mut scratch, &mut dist);
            let token = dist.decode(d);
            if d.overran() {
                return Err(Error::Corrupt("a chunk payload ended early".into()));
            }
            ids[s].push(token);
            if pos + 1 < t {
                grid[s * t + pos + 1] = token;
            }
        }
    }
    Ok(group
        .iter()
        .zip(ids)
        .filter(|((_, k), _)| k.is_none())
        .map(|((i, _), ids)| (*i, ids))
        .collect())
}

/// Steps `chunks` in lockstep, each `(decoder, token count, carried
/// tokens)`: the chunks that share a decoder come together, in the order
/// their tokens interleave in its stream (a lane's chunks position by
/// position, as [`code_lane`] wrote them; a chain's one chunk at a time).
/// The first step runs each chunk's start token and carried tokens at once.
/// `cache` has room for `chunks.len()` sequences of the longest chunk; what
/// it held before is overwritten before it is read.
fn lockstep<N: RowNet>(
    model: &Model,
    net: &N,
    cache: &mut N::Cache,
    decs: &mut [Decoder],
    chunks: &[(usize, usize, &[u32])],
    top_k: usize,
) -> Result<Vec<Vec<u32>>> {
    let n = chunks.len();
    let steps = chunks.iter().map(|c| c.1).max().unwrap_or(0);
    let mut ids: Vec<Vec<u32>> = chunks.iter().map(|c| Vec::with_capacity(c.1)).collect();
    let v = model.vocab_size();
    let hs = net.hidden_size();
    let mut row_of = vec![usize::MAX; n];
    let mut rows: Vec<Row> = Vec::with_capacity(n);
    let mut last = Vec::with_capacity(n);
    // One per chunk: its positions follow each other.
    let mut scratches: Vec<Scratch> = (0..n).map(|_| Scratch::following()).collect();
    for pos in 0..steps {
        rows.clear();
        last.clear();
        row_of.fill(usize::MAX);
        for (s, &(_, count, carried)) in chunks.iter().enumerate() {
            if pos >= count {
                continue;
            }
            if pos == 0 {
                let start = std::iter::once(model.start_token).chain(carried.iter().copied());
                rows.extend(start.enumerate().map(|(p, token)| Row {
                    seq: s,
                    pos: p,
                    token,
                }));
            } else {
                rows.push(Row {
                    seq: s,
                    pos: carried.len() + pos,
                    token: ids[s][pos - 1],
                });
            }
            row_of[s] = last.len();
            last.push(rows.len() - 1);
        }
        let hidden = net.forward(cache, &rows)?;
        // Only each chunk's last row predicts (the others are carried
        // tokens going into the cache).
        let logits = if last.len() == rows.len() {
            net.logits(&hidden, rows.len())?
        } else {
            let picked: Vec<f32> = last
                .iter()
                .flat_map(|&r| hidden[r * hs..(r + 1) * hs].iter().copied())
                .collect();
            net.logits(&picked, last.len())?
        };
        // Each decoder's chunks in order, the decoders in parallel.
        type Work<'a, 'b> = (
            &'a mut Decoder<'b>,
            &'a mut [Vec<u32>],
            &'a mut [Scratch],
            usize,
        );
        let mut work: Vec<Work<'_, '_>> = Vec::with_capacity(decs.len());
        let (mut rest, mut rest_scratch) = (&mut ids[..], &mut scratches[..]);
        let mut first = 0;
        for (d, dec) in decs.iter_mut().enumerate() {
            let k = chunks[first..].iter().take_while(|c| c.0 == d).count();
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(k);
            let (my_scratch, scratch_tail) = std::mem::take(&mut rest_scratch).split_at_mut(k);
            rest = tail;
            rest_scratch = scratch_tail;
            if k > 0 {
                work.push((dec, mine, my_scratch, first));
            }
            first += k;
        }
        debug_assert_eq!(first, n, "chunks grouped by decoder, in order");
        let row_of = &row_of;
        work.into_par_iter()
            .for_each_init(Dist::default, |dist, (d, mine, scratch, first)| {
                for (j, (id, scratch)) in mine.iter_mut().zip(scratch.iter_mut()).enumerate() {
                    let r = row_of[first + j];
                    if r != usize::MAX {
                        Dist::from_logits(&logits[r * v..(r + 1) * v], top_k, scratch, dist);
                        id.push(dist.decode(d));
                    }
                }
            });
        // A stream that ran out is corrupt: stop now rather than run the
        // model for every token the chunk table claims.
        if decs.iter().any(|d| d.overran()) {
            return Err(Error::Corrupt("a chunk payload ended early".into()));
        }
    }
    Ok(ids)
}
