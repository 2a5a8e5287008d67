//! What the device supplies: a heap that counts its high-water mark, a
//! painted stack, a SysTick clock, and a semihosting console and exit code.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use embedded_alloc::LlffHeap;

/// Heap for the whole firmware: 64 KiB, four times the core's budget, so a
/// regression shows up as a missed budget rather than an allocation failure.
pub const HEAP_SIZE: usize = 64 * 1024;

/// The mps2 boards clock the Cortex-M core (and so SysTick, on the processor
/// clock) at 25 MHz.
pub const SYSCLK_HZ: u64 = 25_000_000;
/// Under `-icount shift=0` QEMU advances virtual time by 1 ns per guest
/// instruction, so one 40 ns SysTick period is 40 instructions. The
/// firmware checks this against a loop of known length before trusting it.
pub const INSTRUCTIONS_PER_TICK: u64 = 1_000_000_000 / SYSCLK_HZ;

/// A global allocator that tracks bytes in use and their peak.
pub struct CountingHeap {
    heap: LlffHeap,
    used: AtomicUsize,
    peak: AtomicUsize,
    peak_ever: AtomicUsize,
}

impl CountingHeap {
    pub const fn new() -> Self {
        Self {
            heap: LlffHeap::empty(),
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            peak_ever: AtomicUsize::new(0),
        }
    }

    /// Hands the heap its memory. Call once, before the first allocation.
    pub fn init(&self) {
        static mut MEMORY: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: called once at boot, before any allocation; MEMORY is used
        // by nothing else.
        unsafe { self.heap.init(core::ptr::addr_of_mut!(MEMORY) as usize, HEAP_SIZE) }
    }

    /// Bytes allocated now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes allocated at once since [`Self::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The most bytes allocated at once since boot.
    pub fn peak_ever(&self) -> usize {
        self.peak_ever.load(Ordering::Relaxed)
    }

    /// Starts a new high-water mark from what is allocated now.
    pub fn reset_peak(&self) {
        self.peak.store(self.used(), Ordering::Relaxed);
    }
}

// SAFETY: forwards to LlffHeap, which is a valid allocator; the counters only
// observe sizes.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is forwarded unchanged.
        let ptr = unsafe { self.heap.alloc(layout) };
        if !ptr.is_null() {
            let used = self.used.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(used, Ordering::Relaxed);
            self.peak_ever.fetch_max(used, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.heap.dealloc(ptr, layout) };
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// SysTick wraps (every 2^24 ticks) counted by its exception.
static WRAPS: AtomicU32 = AtomicU32::new(0);
const RELOAD: u32 = 0x00FF_FFFF;

/// Starts SysTick free-running on the processor clock.
pub fn start_clock(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick periods since [`start_clock`] (a 64-bit count from the 24-bit
/// down-counter and its wraps).
pub fn ticks() -> u64 {
    loop {
        let wraps = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        // A wrap between the two reads would pair an old wrap count with a
        // new counter value: read again.
        if WRAPS.load(Ordering::Relaxed) == wraps {
            return (u64::from(wraps) << 24) + u64::from(RELOAD - current);
        }
    }
}

/// Runs a loop of exactly `2 * iterations` instructions (`subs`, `bne`) and
/// answers how many SysTick periods it took.
pub fn time_known_loop(iterations: u32) -> u64 {
    let start = ticks();
    // SAFETY: only a register is touched.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
    ticks() - start
}

/// The painted word: a value the code under test is unlikely to leave in
/// every word of a slot.
const PAINT: u32 = 0xDEAD_C0DE;
/// How far below the caller's frame the stack is painted. Far more than the
/// 8 KiB budget, and far less than the RAM between the heap and the stack.
const PAINT_DEPTH: usize = 32 * 1024;
/// Left unpainted just below the current stack pointer: the painting
/// function's own frame lives there.
const PAINT_GAP: usize = 256;

fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
}

/// Paints the stack below the current frame; returns the stack pointer the
/// depth is measured from.
#[inline(never)]
pub fn paint_stack() -> usize {
    let top = stack_pointer();
    let mut word = (top - PAINT_GAP) & !3;
    while word > top - PAINT_DEPTH {
        word -= 4;
        // SAFETY: free RAM below the stack pointer; nothing lives there until
        // the stack grows into it.
        unsafe { core::ptr::write_volatile(word as *mut u32, PAINT) };
    }
    top
}

/// The deepest the stack went below `top` since [`paint_stack`], in bytes.
#[inline(never)]
pub fn stack_depth(top: usize) -> usize {
    let bottom = (top - PAINT_DEPTH + 4) & !3;
    let mut word = bottom;
    // SAFETY: reads of the painted region, which is plain RAM.
    while word < top && unsafe { core::ptr::read_volatile(word as *const u32) } == PAINT {
        word += 4;
    }
    top - word
}
