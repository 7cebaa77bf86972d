//! `lorabeam run`: the embedded single-process mode, a drop-in for gpt2_beam.py.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use lorabeam_core::eval::score_texts;
use lorabeam_core::predictions::write_predictions;
use lorabeam_core::text::{E2eTexts, PostProcess, ScoreTask};
use lorabeam_core::{plan_items, FirstStep, Record};
use lorabeam_worker::generation::{batch_budget, Engine, ItemSource, WorkItem};
use lorabeam_worker::load_model;
use lorabeam_worker::process::{ProcessUsage, Tuning};

use super::data::{parse_job_data, ENCODED_FROM_TEXT};
use super::launcher::LauncherArgs;
use super::model_args::{at_least_one, DecodeArgs, ModelArgs};
use super::objects::{fetch_model_files, read_data};
use super::run_adapters::{check_flags, print_table, variants, AdapterSpec, Variant, VariantScores, VariantSummary};
use super::run_progress::{RunProgress, Work};
use super::score::{write_text_files, ScoreOptions};
use super::score_task::{files_of, print_task_report, score_task_records, write_task_files, TaskScorer};
use super::task_args::TaskArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Test JSONL: one {"context": [ids], "completion": [ids]} per line (gpt2_encode.py's
    /// output), or its text form {"context": "...", "completion": "..."}, encoded here as
    /// gpt2_encode.py --add_bos --add_eos would. Read once, so a pipe works (`/dev/stdin`,
    /// `<(...)`); or an object's URL (s3://, gs://, az://), read whole from its store.
    #[arg(long, env = "LORABEAM_DATA")]
    pub data: PathBuf,
    /// Lines per batch, as in gpt2_beam.py: only its meaning for the outputs. With beam > 1
    /// the reference picks a line's first token from another line of its batch (see README);
    /// lorabeam reproduces that. It does not size the running batch (--max_rows does).
    #[arg(long = "batch_size", env = "LORABEAM_BATCH_SIZE", default_value_t = 10, value_parser = at_least_one())]
    pub batch_size: usize,
    /// Beam rows decoded together by the continuous batch. Default: 320 on the CPU (its
    /// measured throughput plateau), not capped on CUDA (the KV budget bounds the batch).
    #[arg(long = "max_rows", env = "LORABEAM_MAX_ROWS", value_parser = at_least_one())]
    pub max_rows: Option<usize>,
    /// KV cache budget of the running batch in MiB; 0: no limit. Default: none on the CPU, 70%
    /// of the device's free memory (after loading the model) on CUDA.
    #[arg(long = "max-kv-mib", env = "LORABEAM_MAX_KV_MIB")]
    pub max_kv_mib: Option<usize>,
    /// Pick every line's first token from its own context, fixing gpt2_beam.py's batch_size > 1
    /// first-step indexing (outputs then differ from the reference's for batch_size > 1).
    #[arg(long = "exact_first_step", env = "LORABEAM_EXACT_FIRST_STEP")]
    pub exact_first_step: bool,
    /// Folder for the predictions file (created if missing).
    #[arg(long = "work_dir", env = "PT_OUTPUT_DIR", default_value = "gpt2_model")]
    pub work_dir: PathBuf,
    /// Predictions file name inside work_dir.
    #[arg(long = "output_file", env = "LORABEAM_OUTPUT_FILE", default_value = "beam_prediction.jsonl")]
    pub output_file: String,
    /// Score the predictions against each line's completion as --task's users do (e2e: BLEU,
    /// NIST, METEOR, ROUGE-L, CIDEr as gpt2_decode.py then measure_scores.py -p, into
    /// e2e_ref.txt and e2e_pred.txt; webnlg, dart: eval.py's metrics, into
    /// references_TASK/reference0… and hypothesis_TASK); writes scores.json beside the output.
    #[arg(long, env = "LORABEAM_SCORE")]
    pub score: bool,
    #[command(flatten)]
    pub score_options: ScoreOptions,
    #[command(flatten)]
    pub task: TaskArgs,
    /// An adapter to decode on --base_checkpoint: a PEFT directory (adapter_config.json and
    /// adapter_model.safetensors or .bin) or gpt2_ft.py's LoRA-only .pt (alpha: --lora_alpha),
    /// as PATH or NAME=PATH (default name: the file stem or folder name). PATH may be an
    /// object's URL: one ending in `.pt` (or naming one object) is that file, any other a PEFT
    /// folder in the store, fetched into --object-cache-dir. Repeat it to decode
    /// several in one running batch; each writes work_dir/NAME/output_file, and a table
    /// compares them.
    #[arg(long, env = "LORABEAM_ADAPTER", value_delimiter = ',')]
    pub adapter: Vec<AdapterSpec>,
    /// With --adapter: also decode the bare base, into work_dir/base/output_file.
    #[arg(long = "include_base", env = "LORABEAM_INCLUDE_BASE")]
    pub include_base: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub launcher: LauncherArgs,
}

pub fn run(args: RunArgs, tuning: &Tuning) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = RunProgress::start();
    args.launcher.note_ignored();
    args.task.check()?;
    let model_args = &args.model;
    check_flags(
        &args.adapter,
        args.include_base,
        model_args.init_checkpoint.as_deref(),
        model_args.base_checkpoint.as_deref(),
        model_args.lora_dim,
    )?;
    // The data is read first (once: a pipe, or an object), so a missing file fails before
    // the model loads; it is parsed once the model says its vocabulary.
    let data_bytes = read_data(&args.data)?;
    let (spec, adapters) = fetch_model_files(model_args, &args.adapter)?;
    let model = load_model(&spec).context("loading the model")?;
    let params = args.decode.params().validate(model.config().limits()).context("invalid decoding parameters")?;
    let data = parse_job_data(&args.data, &data_bytes, model.config().vocab_size)?;
    drop(data_bytes);
    let records = data.records;
    let categories = data.categories;
    let first_step = FirstStep { reference_batch_size: args.batch_size, exact: args.exact_first_step };
    let plan = plan_items(&records, &params, first_step);
    let variants = variants(&model, &adapters, args.include_base, model_args.lora_alpha, &args.work_dir)?;
    let loaded = started.elapsed();

    let distinct = plan.distinct.len();
    // With batch_size > 1 and beam > 1 one context may be decoded with several first steps
    // (the reference's indexing): items, not contexts.
    let distinct_contexts = plan.distinct.iter().map(|(context, _)| context).collect::<HashSet<_>>().len();
    // Item `key` is context `key / variants` of variant `key % variants`: the variants take
    // turns, so they decode side by side in one running batch.
    let n = variants.len();
    let mut predictions: Vec<Option<Vec<u32>>> = vec![None; distinct * n];
    let mut generated_tokens = vec![0usize; n];
    let items = plan.distinct.iter().enumerate().flat_map(|(context_index, (context, first_step))| {
        variants.iter().enumerate().map(move |(v, variant)| WorkItem {
            key: context_index * n + v,
            context: context.clone(),
            first_step_context: first_step.clone(),
            adapter: variant.adapter.clone(),
        })
    });
    let budget = batch_budget(&model, args.max_rows, args.max_kv_mib);
    let stepped = |_: std::time::Duration, rows: usize| progress.stepped(rows);
    let mut engine = Engine::new(&model, params.clone(), budget.budget.max_rows).with_step_observer(&stepped);
    if let Some(bytes) = budget.budget.kv_bytes {
        engine = engine.with_kv_budget(bytes);
    }
    let work = Work { items: (distinct * n) as u64, beam: params.beam as u64, eval_len: params.eval_len as u64 };
    progress.decoding(work);
    let decode_started = Instant::now();
    let usage_before = ProcessUsage::read();
    let stats = engine.run_source(&mut Items(items), |key, predict, generated| {
        predictions[key] = Some(predict);
        generated_tokens[key % n] += generated;
        progress.item_done(generated);
    })?;
    progress.writing();
    let decode_time = decode_started.elapsed().as_secs_f64();
    let usage = ProcessUsage::read().zip(usage_before).map(|(now, before)| now.since(&before));
    anyhow::ensure!(predictions.iter().all(Option::is_some), "internal error: an item produced no prediction");

    let decoded = Decoded { predictions, generated_tokens, seconds: decode_time };
    let (summaries, bleu, outputs) =
        write_outputs(&args, &variants, &records, &categories, &plan.index_of_record, &decoded)?;
    if !args.adapter.is_empty() {
        print_table(&summaries);
    }
    crate::errln!(
        "batch: {}, {} attention; peak {} rows, {} decode steps, {:.2}s of CPU-side search work",
        budget.how,
        model.attention(),
        stats.peak_rows,
        stats.decode_steps,
        stats.host_seconds
    );
    print_process_line(tuning, usage, stats.generated_tokens);
    crate::errln!(
        "decoded {} lines{} ({} distinct contexts{}) in {:.2}s (+{:.2}s loading): {:.2} lines/s, {} generated tokens, {:.0} tokens/s, {:.3} TFLOP of model arithmetic{bleu}; wrote {}",
        records.len() * n,
        if data.encoded_from_text { format!(" ({ENCODED_FROM_TEXT})") } else { String::new() },
        distinct_contexts,
        if n > 1 { format!(", {n} adapters") } else { String::new() },
        decode_time,
        loaded.as_secs_f64(),
        (records.len() * n) as f64 / decode_time,
        stats.generated_tokens,
        stats.generated_tokens as f64 / decode_time,
        stats.flops / 1e12,
        outputs.join(", ")
    );
    Ok(())
}

/// The threads and process settings decoding ran with, and what it cost the process: the
/// figures `cargo bench --bench process_tuning` compares.
fn print_process_line(tuning: &Tuning, usage: Option<ProcessUsage>, tokens: usize) {
    let cost = usage.map_or_else(String::new, |u| {
        format!(
            "; decoding took {:.2}s user, {:.2}s system, {} minor page faults ({:.1} per token)",
            u.user_seconds,
            u.system_seconds,
            u.minor_faults,
            u.minor_faults as f64 / tokens.max(1) as f64
        )
    });
    crate::errln!("threads: {} ({tuning}){cost}", tch::get_num_threads());
}

/// Every variant's predictions, item `context * variants + variant`, the tokens each variant
/// generated, and the seconds of decoding.
struct Decoded {
    predictions: Vec<Option<Vec<u32>>>,
    generated_tokens: Vec<usize>,
    seconds: f64,
}

impl Decoded {
    /// Variant `v`'s share of the decoding time. The variants share every step of one running
    /// batch, so each is given the part of the time its generated tokens (its beam rows times
    /// steps) took of all of them.
    fn seconds_of(&self, v: usize) -> f64 {
        let all: usize = self.generated_tokens.iter().sum();
        self.seconds * self.generated_tokens[v] as f64 / all.max(1) as f64
    }
}

/// Writes each variant's predictions (and scores, with --score) into its folder. Returns the
/// table's rows, the single run's BLEU summary, and the files written.
fn write_outputs(
    args: &RunArgs,
    variants: &[Variant],
    records: &[Record],
    categories: &[Option<bool>],
    index_of_record: &[usize],
    decoded: &Decoded,
) -> anyhow::Result<(Vec<VariantSummary>, String, Vec<String>)> {
    let n = variants.len();
    let mut summaries = Vec::with_capacity(n);
    let mut bleu = String::new();
    let mut outputs = Vec::with_capacity(n);
    // One word_tokenize and one METEOR JVM for every variant's scores.
    let scorer = (args.score && args.task.task != ScoreTask::E2e)
        .then(|| TaskScorer::new(&args.task, args.score_options.meteor()));
    for (v, variant) in variants.iter().enumerate() {
        let rows: Vec<(usize, &[u32])> = records
            .iter()
            .zip(index_of_record)
            .map(|(record, &item)| (record.id, decoded.predictions[item * n + v].as_deref().unwrap_or_default()))
            .collect();
        std::fs::create_dir_all(&variant.dir)
            .with_context(|| format!("creating output folder {}", variant.dir.display()))?;
        let out = variant.dir.join(&args.output_file);
        write_predictions(&out, rows.iter().copied())?;
        outputs.push(out.display().to_string());
        let single = args.adapter.is_empty();
        let scores = if args.score {
            let (summary, scores) = match &scorer {
                Some(scorer) => score_task_output(args, scorer, &variant.dir, (records, categories), &rows, single)?,
                None => score_output(args, &variant.dir, records, &rows, single)?,
            };
            if single {
                bleu = summary;
            }
            Some(scores)
        } else {
            None
        };
        let (seconds, generated_tokens) = (decoded.seconds_of(v), decoded.generated_tokens[v]);
        let name = variant.name.clone();
        summaries.push(VariantSummary { name, lines: records.len(), seconds, generated_tokens, scores });
    }
    Ok((summaries, bleu, outputs))
}

/// The run's items, handed out as the engine has room.
struct Items<I>(I);

impl<I: Iterator<Item = WorkItem>> ItemSource for Items<I> {
    fn next_item(&mut self, _idle: bool) -> Option<WorkItem> {
        self.0.next()
    }
}

/// Scores the predictions just written: writes scores.json and gpt2_decode.py's two files
/// into `dir`, prints the scores if `print`, and returns the summary's BLEU part and the scores.
fn score_output(
    args: &RunArgs,
    dir: &Path,
    records: &[Record],
    rows: &[(usize, &[u32])],
    print: bool,
) -> anyhow::Result<(String, VariantScores)> {
    let texts = E2eTexts::new(records, rows.iter().copied())?;
    let report = score_texts(&texts, PostProcess::default(), &args.score_options.meteor())?;
    write_text_files(&report, Some(&dir.join("e2e_ref.txt")), Some(&dir.join("e2e_pred.txt")))?;
    let json = format!("{}\n", report.scores.to_json_line());
    lorabeam_core::predictions::write_atomically(&dir.join("scores.json"), json.as_bytes())?;
    if print {
        args.score_options.print(&report.scores);
    }
    Ok((format!(", BLEU {:.4} over {} contexts", report.scores.bleu, report.groups), VariantScores::E2e(report.scores)))
}

/// `--task webnlg|dart`: gpt2_decode.py's files of `--filter`'s subset (else all) into
/// `dir/references_TASK/` and `dir/hypothesis_TASK`, the report into scores.json, printed if
/// `print`.
fn score_task_output(
    args: &RunArgs,
    scorer: &TaskScorer,
    dir: &Path,
    (records, categories): (&[Record], &[Option<bool>]),
    rows: &[(usize, &[u32])],
    print: bool,
) -> anyhow::Result<(String, VariantScores)> {
    let (report, files) = score_task_records(&args.data, categories, records, rows, &args.task, scorer)?;
    let task = args.task.task;
    if let Some(files) = files_of(&report, &files, args.task.filter) {
        let (refs, hyp) = (dir.join(format!("references_{task}")), dir.join(format!("hypothesis_{task}")));
        write_task_files(files, Some(&refs), Some(&hyp))?;
    }
    let json = report.to_json();
    lorabeam_core::predictions::write_atomically(&dir.join("scores.json"), format!("{json}\n").as_bytes())?;
    if print {
        print_task_report(&report, args.score_options.json, args.task.eval_py_verbatim);
    }
    let all = &json["scores"]["all"];
    let summary = match (all["BLEU"].as_f64(), all["items"].as_u64()) {
        (Some(bleu), Some(items)) => format!(", BLEU {bleu:.2} over {items} contexts"),
        _ => String::new(),
    };
    Ok((summary, VariantScores::Task(json)))
}
