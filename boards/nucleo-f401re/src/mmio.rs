//! Memory-mapped register access.

use core::ptr;

/// One 32-bit memory-mapped register at a fixed address.
#[derive(Clone, Copy)]
pub(crate) struct Reg(usize);

impl Reg {
    /// The register at `addr`.
    ///
    /// # Safety
    ///
    /// `addr` must be the address of a 32-bit device register of the
    /// STM32F401 (as documented in RM0368) for which volatile reads
    /// and writes have no effect on memory safety. All of this crate's
    /// registers are declared as constants next to their driver.
    pub(crate) const unsafe fn at(addr: usize) -> Reg {
        Reg(addr)
    }

    /// Reads the register.
    #[inline]
    pub(crate) fn read(self) -> u32 {
        // SAFETY: `Reg::at` promises this is a device register.
        unsafe { ptr::read_volatile(self.0 as *const u32) }
    }

    /// Writes the register.
    #[inline]
    pub(crate) fn write(self, value: u32) {
        // SAFETY: `Reg::at` promises this is a device register.
        unsafe { ptr::write_volatile(self.0 as *mut u32, value) }
    }

    /// Read-modify-write. Not atomic: callers that share the register with an
    /// interrupt handler do this inside a critical section.
    #[inline]
    pub(crate) fn modify(self, f: impl FnOnce(u32) -> u32) {
        self.write(f(self.read()));
    }
}
