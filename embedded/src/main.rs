//! liveguard on a Cortex-M4F (QEMU `mps2-an386`): derives the keys, verifies
//! session cookies and join tokens made on the host, runs a `LiveRouter`
//! join with its `on_mount` hook and event authorization, and measures each
//! operation. Exits with success through semihosting only if every check
//! passes; a panic exits with failure.
//!
//! Output is line-oriented for `run.sh`: `PASS`/`FAIL` per check, `NUM` per
//! measurement, then `RESULT passed total`.

#![no_std]
#![no_main]

extern crate alloc;

#[cfg(not(feature = "baseline"))]
mod app;
#[cfg(not(feature = "baseline"))]
mod checks;
mod device;

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

use device::CountingHeap;

#[global_allocator]
static HEAP: CountingHeap = CountingHeap::new();

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

/// Records one check: `ok` must be an answer that could have been otherwise.
pub fn check(name: &str, ok: bool) {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        hprintln!("PASS {}", name);
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
        hprintln!("FAIL {}", name);
    }
}

/// What one operation cost on the device.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    /// Guest instructions (SysTick periods times [`device::INSTRUCTIONS_PER_TICK`]).
    pub instructions: u64,
    /// Heap high-water mark during the operation, above what was allocated
    /// before it.
    pub heap: usize,
    /// Deepest stack use below the caller's frame.
    pub stack: usize,
}

/// Runs `op` once and measures it.
#[inline(never)]
pub fn measure<T>(op: impl FnOnce() -> T) -> (T, Cost) {
    let top = device::paint_stack();
    let before = HEAP.used();
    HEAP.reset_peak();
    let start = device::ticks();
    let value = op();
    let ticks = device::ticks() - start;
    let heap = HEAP.peak() - before;
    let stack = device::stack_depth(top);
    (value, Cost { instructions: ticks * device::INSTRUCTIONS_PER_TICK, heap, stack })
}

/// Prints one measurement.
pub fn report(name: &str, cost: Cost) {
    hprintln!("NUM {} instructions={} heap={} stack={}", name, cost.instructions, cost.heap, cost.stack);
}

#[entry]
fn main() -> ! {
    HEAP.init();
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("FAIL core peripherals already taken");
        exit(debug::EXIT_FAILURE);
    };
    device::start_clock(peripherals.SYST);
    hprintln!("liveguard-embedded on mps2-an386 (Cortex-M4F)");

    // Instruction counts are SysTick periods times 40: true only under
    // `-icount shift=0`, so the firmware checks it on a loop of 2,000,000
    // instructions before reporting any count.
    let ticks = device::time_known_loop(1_000_000);
    let per_tick_milli = 2_000_000_000 / ticks.max(1);
    hprintln!("NUM calibration ticks={} instructions_per_tick_milli={}", ticks, per_tick_milli);
    check(
        "clock: SysTick counts 40 instructions per period (QEMU -icount shift=0)",
        per_tick_milli.abs_diff(40_000) < 400,
    );

    #[cfg(not(feature = "baseline"))]
    checks::run();
    #[cfg(feature = "baseline")]
    baseline();

    let passed = PASSED.load(Ordering::Relaxed);
    let failed = FAILED.load(Ordering::Relaxed);
    hprintln!("NUM heap_since_boot peak={} size={}", HEAP.peak_ever(), device::HEAP_SIZE);
    hprintln!("RESULT {} {}", passed, passed + failed);
    exit(if failed == 0 && passed > 0 { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE })
}

/// Ends the run with `status` as QEMU's exit code. Without a debugger
/// attached semihosting cannot exit, so the core then sleeps for good.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// The runtime without the core: the same allocator, clock, measurement and
/// console, so its flash is what the firmware costs before liveguard.
#[cfg(feature = "baseline")]
fn baseline() {
    let (sum, cost) = measure(|| {
        let values: alloc::vec::Vec<u64> = (0..64).collect();
        values.iter().sum::<u64>()
    });
    report("baseline_alloc", cost);
    check("heap: a vector allocates and sums", sum == 2016 && cost.heap >= 512);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("FAIL panic: {}", info);
    exit(debug::EXIT_FAILURE)
}
