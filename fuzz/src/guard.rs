//! What the targets count as a crash beyond a panic or an abort: too much memory for one
//! input, and a stack overflow on the stack the worker parses on.
//!
//! libFuzzer's `-malloc_limit_mb` needs a sanitizer's malloc hooks, and the targets run without
//! one (libtorch's C++ would need instrumenting too); its `-rss_limit_mb` only samples once a
//! second. So the targets' Rust allocations go through `Capped`, which refuses (returns null)
//! one allocation over `MAX_ONE_ALLOCATION` or a live total over `MAX_LIVE`: Rust then aborts
//! with "memory allocation of N bytes failed", which libFuzzer reports as a crash the moment
//! it happens, and `try_reserve` sees an ordinary error. Inputs are at most a few MiB, so a
//! reader that needs more than these caps amplifies its input beyond reason. libtorch's own
//! allocations are not counted; `-rss_limit_mb` still covers them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const MAX_ONE_ALLOCATION: usize = 256 << 20;
pub const MAX_LIVE: usize = 1 << 30;

/// The caps in force: the constants, or both `LORABEAM_FUZZ_ALLOC_CAP_MB` (read by `init`;
/// the allocator itself must not allocate to read it). scripts/fuzz-measure.sh raises them to
/// time the allocations that fail for real (a zip64 size of 2^40) apart from merely huge ones.
static ONE_CAP: AtomicUsize = AtomicUsize::new(MAX_ONE_ALLOCATION);
static LIVE_CAP: AtomicUsize = AtomicUsize::new(MAX_LIVE);

/// The worker loads checkpoints and adapters on tokio's blocking threads and its own
/// `std::thread`s: 2 MiB of stack each, both libraries' default. Each input is parsed on a
/// thread of that size rather than on libFuzzer's 8 MiB main thread, so recursion too deep for
/// the worker is a crash here too, and is reached with a quarter of the nesting.
pub const WORKER_STACK: usize = 2 << 20;

/// `WORKER_STACK`, unless `LORABEAM_FUZZ_STACK_KB` says otherwise: scripts/fuzz-measure.sh
/// sets a huge stack to time the other crashes while a stack overflow is still in the code.
fn stack_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| match std::env::var("LORABEAM_FUZZ_STACK_KB") {
        Ok(kb) => kb.parse::<usize>().expect("LORABEAM_FUZZ_STACK_KB is a number") << 10,
        Err(_) => WORKER_STACK,
    })
}

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether `size` more bytes, in one allocation of `whole` bytes, stay under the caps; if so
/// they are counted as live.
fn reserve(size: usize, whole: usize) -> bool {
    let (one_cap, live_cap) = (ONE_CAP.load(Ordering::Relaxed), LIVE_CAP.load(Ordering::Relaxed));
    if whole > one_cap {
        refused(format_args!("one allocation of {whole} bytes, over the {} MiB cap", one_cap >> 20));
        return false;
    }
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    if live > live_cap {
        LIVE.fetch_sub(size, Ordering::Relaxed);
        refused(format_args!("{live} bytes live, over the {} MiB cap", live_cap >> 20));
        return false;
    }
    true
}

/// Says why an allocation is refused (the abort that follows only gives its size), without
/// allocating: formatted on the stack, written with write(2).
fn refused(why: std::fmt::Arguments) {
    let mut msg = [0u8; 160];
    let mut w = std::io::Cursor::new(&mut msg[..]);
    let _ = std::io::Write::write_fmt(&mut w, format_args!("\nfuzz: allocation refused: {why}\n"));
    let len = w.position() as usize;
    // SAFETY: write(2) of a live buffer.
    unsafe { libc::write(2, msg.as_ptr().cast(), len) };
}

fn release(size: usize) {
    LIVE.fetch_sub(size, Ordering::Relaxed);
}

pub struct Capped;

// `unsafe`, as a global allocator has to be (the fuzz crate is not under the workspace's
// forbid(unsafe_code)); it only counts, and hands every call on to the system allocator.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        let ptr = System.alloc(layout);
        if ptr.is_null() {
            release(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        let ptr = System.alloc_zeroed(layout);
        if ptr.is_null() {
            release(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        release(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !reserve(new_size - old, new_size) {
            return std::ptr::null_mut();
        }
        let new = System.realloc(ptr, layout, new_size);
        match (new.is_null(), new_size > old) {
            (true, true) => release(new_size - old),
            (false, false) => release(old - new_size),
            _ => {}
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// Runs `f` on a thread with the worker's stack and waits for it. A panic there aborts the
/// process (libfuzzer-sys's panic hook), as one on the main thread would; so does a stack
/// overflow, once `init` has run.
pub fn on_worker_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("fuzz-input".into())
            .stack_size(stack_size())
            .spawn_scoped(scope, || {
                let _alt = AltStack::new();
                let here = 0u8;
                STACK_TOP.set(&here as *const u8 as usize);
                f()
            })
            .expect("spawn the parsing thread");
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

// A stack overflow is a SIGSEGV on the guard page below the stack. Rust's handler for it
// (the "has overflowed its stack" message, then an abort) is installed by Rust's own `main`,
// which a libFuzzer binary does not run; libFuzzer's handler has no alternate stack to run on,
// so the process just dies, and libFuzzer never writes the input down. `init` installs a
// handler that runs on a per-thread alternate stack and aborts: libFuzzer (which calls it as
// the previous SIGSEGV handler, keeping SA_ONSTACK) then reports a crash and saves the input.

const ALT_STACK: usize = 256 << 10;

thread_local! {
    /// Roughly where the parsing thread's stack starts (it grows down from there).
    static STACK_TOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// This thread's alternate signal stack, for as long as it lives.
struct AltStack(Vec<u8>);

impl AltStack {
    fn new() -> Self {
        let mut stack = AltStack(vec![0; ALT_STACK]);
        let ss = libc::stack_t { ss_sp: stack.0.as_mut_ptr().cast(), ss_flags: 0, ss_size: stack.0.len() };
        // SAFETY: the memory outlives its use: Drop disables the alternate stack first.
        unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
        stack
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let ss = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        // SAFETY: turns this thread's alternate stack off before its memory is freed.
        unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
    }
}

extern "C" fn on_segv(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // Only async-signal-safe calls: format into a stack buffer, write(2), abort(3).
    // SAFETY: the kernel hands a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let top = STACK_TOP.get();
    let overflow = top != 0 && addr < top && top - addr < stack_size() + (64 << 10);
    let mut msg = [0u8; 160];
    let mut w = std::io::Cursor::new(&mut msg[..]);
    let _ = if overflow {
        std::io::Write::write_fmt(
            &mut w,
            format_args!("\nfuzz: stack overflow: the input needs more than a {} KiB stack\n", stack_size() >> 10),
        )
    } else {
        std::io::Write::write_fmt(&mut w, format_args!("\nfuzz: SIGSEGV at {addr:#x}\n"))
    };
    let len = w.position() as usize;
    // SAFETY: write(2) of a live buffer, then abort(3).
    unsafe {
        libc::write(2, msg.as_ptr().cast(), len);
        libc::abort();
    }
}

/// Once per process, before libFuzzer sets its own handlers: the allocation caps, the SIGSEGV
/// handler above (on an alternate stack, for the main thread too), then the seeds if they are
/// asked for.
pub fn init(seeds: impl FnOnce() -> Vec<(&'static str, Vec<u8>)>) {
    if let Ok(mb) = std::env::var("LORABEAM_FUZZ_ALLOC_CAP_MB") {
        let cap = mb.parse::<usize>().expect("LORABEAM_FUZZ_ALLOC_CAP_MB is a number") << 20;
        ONE_CAP.store(cap, Ordering::Relaxed);
        LIVE_CAP.store(cap, Ordering::Relaxed);
    }
    std::mem::forget(AltStack::new());
    // SAFETY: a plain sigaction(2) call with a handler of the SA_SIGINFO signature.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_segv as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
    }
    write_seeds_if_asked(seeds);
}

/// When `LORABEAM_FUZZ_WRITE_SEEDS` names a folder, writes the target's seeds there and exits:
/// scripts/fuzz.sh runs each built target so once before fuzzing it (no separate build).
fn write_seeds_if_asked(seeds: impl FnOnce() -> Vec<(&'static str, Vec<u8>)>) {
    let Some(dir) = std::env::var_os("LORABEAM_FUZZ_WRITE_SEEDS") else { return };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the seed folder");
    let seeds = seeds();
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
    eprintln!("wrote {} seeds to {}", seeds.len(), dir.display());
    std::process::exit(0);
}
