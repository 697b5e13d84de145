//! UART0, an ARM PL011 (in Stellaris flavour): the serial port to the gateway.
//!
//! Reception is interrupt driven: the UART0 interrupt moves bytes from the
//! 16-byte hardware FIFO into a lock-free ring ([`RX_RING_LEN`] bytes) that
//! [`Uart0::read`](corral_board_common::SerialPort::read) drains. Transmission
//! is blocking: each byte waits for room in the transmit FIFO. Under QEMU a
//! write to the data register is handed straight to the chardev, so it never
//! waits there.
//!
//! When the ring is full the interrupt handler stops taking bytes and masks
//! the receive interrupt until the firmware has read some; the bytes wait in
//! the hardware FIFO. Under QEMU nothing is lost that way: QEMU stops reading
//! from the socket while the FIFO is full, so the sender is simply slowed
//! down. On silicon the FIFO would overrun instead and the protocol's CRC and
//! retransmission take over.

use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use cortex_m::peripheral::NVIC;
use cortex_m_rt::interrupt;
use critical_section::Mutex;
use heapless::spsc::{Consumer, Producer, Queue};

use crate::mmio::Reg;
use crate::vectors::{interrupt, Interrupt};
use crate::SYSCLK_HZ;

/// Bytes the receive ring holds. The queue has one more slot, kept free to
/// tell full from empty; 256 slots make the index wrap a mask, not a division.
pub const RX_RING_LEN: usize = 255;

/// The ring's storage type.
pub(crate) type RxRing = Queue<u8, { RX_RING_LEN + 1 }>;

/// Line rate programmed into the baud-rate divisors. QEMU ignores it for
/// socket and stdio chardevs (bytes move as fast as the host takes them); on
/// silicon it is the real line rate.
pub const BAUD: u32 = 115_200;

const BASE: usize = 0x4000_c000;
// SAFETY: UART0 registers from the LM3S6965 data sheet.
const DR: Reg = unsafe { Reg::at(BASE) };
const FR: Reg = unsafe { Reg::at(BASE + 0x018) };
const IBRD: Reg = unsafe { Reg::at(BASE + 0x024) };
const FBRD: Reg = unsafe { Reg::at(BASE + 0x028) };
const LCRH: Reg = unsafe { Reg::at(BASE + 0x02c) };
const CTL: Reg = unsafe { Reg::at(BASE + 0x030) };
const IFLS: Reg = unsafe { Reg::at(BASE + 0x034) };
const IM: Reg = unsafe { Reg::at(BASE + 0x038) };
const ICR: Reg = unsafe { Reg::at(BASE + 0x044) };

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const LCRH_FEN: u32 = 1 << 4;
const LCRH_WLEN_8: u32 = 0b11 << 5;
const CTL_UARTEN: u32 = 1 << 0;
const CTL_TXE: u32 = 1 << 8;
const CTL_RXE: u32 = 1 << 9;
/// Receive (FIFO level) and receive-timeout interrupts. The timeout one
/// matters on silicon, where the level interrupt waits for 2 bytes; QEMU
/// raises the level interrupt for every byte.
const INT_RX: u32 = (1 << 4) | (1 << 6);
const INT_ALL: u32 = 0x7ff;

// PA0/PA1 carry UART0 once their alternate function is selected.
const GPIOA_AFSEL: Reg = unsafe { Reg::at(0x4000_4420) };
const GPIOA_DEN: Reg = unsafe { Reg::at(0x4000_451c) };
const PA0_PA1: u32 = 0b11;

/// The baud-rate divisor in 1/64ths: UARTCLK / (16 * BAUD), rounded.
const BRD_64THS: u32 = (SYSCLK_HZ * 4 + BAUD / 2) / BAUD;

/// The ring's producer end, used only by the UART0 interrupt handler.
static RX_PRODUCER: Mutex<RefCell<Option<Producer<'static, u8>>>> = Mutex::new(RefCell::new(None));
/// Set by the interrupt handler when it stopped reading because the ring was
/// full (and masked its interrupt); cleared by `read` once there is room.
static RX_PAUSED: AtomicBool = AtomicBool::new(false);
/// How many times reception was paused because the ring was full.
static RX_PAUSES: AtomicU32 = AtomicU32::new(0);

/// The UART0 driver; implements [`corral_board_common::SerialPort`].
pub struct Uart0 {
    rx: Consumer<'static, u8>,
}

impl Uart0 {
    /// Configures UART0 for 115200 8N1 with FIFOs and the receive interrupt,
    /// and takes the consumer end of `ring`.
    pub(crate) fn init(ring: &'static mut RxRing) -> Uart0 {
        let (producer, consumer) = ring.split();
        critical_section::with(|cs| RX_PRODUCER.borrow(cs).replace(Some(producer)));
        GPIOA_AFSEL.modify(|v| v | PA0_PA1);
        GPIOA_DEN.modify(|v| v | PA0_PA1);
        configure(INT_RX);
        // SAFETY: the handler only touches the producer (behind a critical
        // section) and UART registers this driver owns.
        unsafe { NVIC::unmask(Interrupt::UART0) };
        Uart0 { rx: consumer }
    }

    /// Received bytes are waiting in the ring.
    pub fn rx_ready(&self) -> bool {
        self.rx.ready()
    }

    /// How many times since boot the receive ring filled up and reception
    /// paused until the firmware read from it. Under QEMU a pause loses
    /// nothing; on silicon it may mean a FIFO overrun. A diagnostic for
    /// firmware that falls behind its serial input.
    pub fn rx_pauses(&self) -> u32 {
        RX_PAUSES.load(Ordering::Relaxed)
    }
}

impl corral_board_common::SerialPort for Uart0 {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            match self.rx.dequeue() {
                Some(byte) => *slot = byte,
                None => break,
            }
            n += 1;
        }
        if n > 0 && RX_PAUSED.load(Ordering::Relaxed) {
            // There is room again: let the interrupt handler take the bytes
            // that waited in the FIFO. The interrupt is level-triggered, so
            // it fires at once if any are there.
            critical_section::with(|_| {
                RX_PAUSED.store(false, Ordering::Relaxed);
                IM.modify(|v| v | INT_RX);
            });
        }
        n
    }

    fn write(&mut self, data: &[u8]) {
        write_blocking(data);
    }

    fn flush(&mut self) {
        flush();
    }
}

/// Sets line format, divisors and enabled interrupts, and turns the UART on.
fn configure(interrupts: u32) {
    CTL.write(0);
    ICR.write(INT_ALL);
    IBRD.write(BRD_64THS / 64);
    FBRD.write(BRD_64THS % 64);
    // Writing LCRH latches the divisors, so it comes after them.
    LCRH.write(LCRH_WLEN_8 | LCRH_FEN);
    // Receive FIFO level 1/8 (2 bytes): the lowest, for the lowest latency.
    IFLS.write(0);
    IM.write(interrupts);
    CTL.write(CTL_UARTEN | CTL_TXE | CTL_RXE);
}

/// Makes sure the transmitter works, without disturbing a configured UART.
/// For the panic and fault paths, which may run before `init`.
pub(crate) fn ensure_tx_enabled() {
    if CTL.read() & (CTL_UARTEN | CTL_TXE) != CTL_UARTEN | CTL_TXE {
        configure(0);
    }
}

/// Sends `data`, waiting for room in the transmit FIFO as needed. Usable
/// from any context, including the panic handler, because transmission keeps
/// no state in RAM.
pub(crate) fn write_blocking(data: &[u8]) {
    for &byte in data {
        while FR.read() & FR_TXFF != 0 {}
        DR.write(u32::from(byte));
    }
}

/// Waits until the last written byte has left the shift register.
pub(crate) fn flush() {
    while FR.read() & FR_BUSY != 0 {}
}

#[interrupt]
fn UART0() {
    critical_section::with(|cs| {
        let mut slot = RX_PRODUCER.borrow_ref_mut(cs);
        let Some(producer) = slot.as_mut() else {
            // Cannot happen (the interrupt is unmasked after the producer is
            // stored), but a level interrupt that nobody serves would fire
            // forever, so switch it off.
            IM.write(0);
            return;
        };
        while FR.read() & FR_RXFE == 0 {
            if !producer.ready() {
                // Leave the rest in the FIFO. Not acknowledging it keeps the
                // interrupt pending, so unmasking it later resumes reception.
                IM.modify(|v| v & !INT_RX);
                RX_PAUSED.store(true, Ordering::Relaxed);
                RX_PAUSES.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Bits 8..11 are framing/parity/break/overrun flags. A damaged
            // byte is still passed on: the protocol's CRC rejects the frame.
            let _ = producer.enqueue(DR.read() as u8);
        }
    });
}
