//! USART2 (RM0368 section 19, "USART"): the serial port to the gateway.
//!
//! On the Nucleo-F401RE, USART2's TX and RX (PA2, PA3) are wired to the
//! on-board ST-Link, which offers them to the host as a USB virtual COM port
//! (`/dev/ttyACM*`). 115200 8N1, no flow control.
//!
//! Reception is interrupt driven: the USART2 interrupt moves each received
//! byte from the data register into a lock-free ring ([`RX_RING_LEN`] bytes)
//! that [`Usart2::read`](corral_board_common::SerialPort::read) drains.
//! Transmission is blocking: each byte waits until the data register is
//! empty (USART_SR.TXE).
//!
//! This USART has no FIFO: the receive data register holds one byte, and
//! the next one overruns it (USART_SR.ORE) unless the interrupt ran within a
//! character time (87 µs at 115200 baud; at 84 MHz the handler needs well
//! under 1 µs). When the ring is full, the handler still reads the byte (or
//! the interrupt would fire forever) and drops it. Both losses are counted
//! ([`Usart2::rx_dropped`], [`Usart2::rx_overruns`]); the protocol's CRC and
//! retransmission recover from them.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::NVIC;
use cortex_m_rt::interrupt;
use critical_section::Mutex;
use heapless::spsc::{Consumer, Producer, Queue};

use crate::mmio::Reg;
use crate::rcc::{self, PCLK1_HZ};
use crate::vectors::{interrupt, Interrupt};

/// Bytes the receive ring holds: 44 ms of input at 115200 baud, for when
/// the firmware is busy. The queue has one more slot, kept free to tell full
/// from empty; 512 slots make the index wrap a mask, not a division.
pub const RX_RING_LEN: usize = 511;

/// The ring's storage type.
pub(crate) type RxRing = Queue<u8, { RX_RING_LEN + 1 }>;

/// Line rate. The ST-Link's virtual COM port follows whatever rate the host
/// opens it with, so the gateway's `baud` must match this.
pub const BAUD: u32 = 115_200;

const USART2: usize = 0x4000_4400;
// SAFETY: USART2 registers, RM0368 section 19.6.
const USART_SR: Reg = unsafe { Reg::at(USART2) };
const USART_DR: Reg = unsafe { Reg::at(USART2 + 0x04) };
const USART_BRR: Reg = unsafe { Reg::at(USART2 + 0x08) };
const USART_CR1: Reg = unsafe { Reg::at(USART2 + 0x0c) };
const USART_CR2: Reg = unsafe { Reg::at(USART2 + 0x10) };
const USART_CR3: Reg = unsafe { Reg::at(USART2 + 0x14) };

const SR_ORE: u32 = 1 << 3;
const SR_RXNE: u32 = 1 << 5;
const SR_TC: u32 = 1 << 6;
const SR_TXE: u32 = 1 << 7;
const CR1_RE: u32 = 1 << 2;
const CR1_TE: u32 = 1 << 3;
/// Interrupt on RXNE, and on ORE too (RM0368, USART interrupt requests).
const CR1_RXNEIE: u32 = 1 << 5;
const CR1_UE: u32 = 1 << 13;

/// USART_BRR with 16x oversampling (CR1.OVER8 = 0): USARTDIV in 12.4 fixed
/// point is PCLK1 / BAUD, rounded: 42 MHz / 115200 = 364.6 -> 365 (0x16d,
/// mantissa 22, fraction 13), an actual rate of 115068 baud, -0.11 %.
const BRR_VALUE: u32 = (PCLK1_HZ + BAUD / 2) / BAUD;
const _: () = assert!(BRR_VALUE == 0x16d);

// SAFETY: GPIO port A registers, RM0368 section 8.4.
const GPIOA: usize = 0x4002_0000;
const GPIOA_MODER: Reg = unsafe { Reg::at(GPIOA) };
const GPIOA_PUPDR: Reg = unsafe { Reg::at(GPIOA + 0x0c) };
const GPIOA_AFRL: Reg = unsafe { Reg::at(GPIOA + 0x20) };
/// PA2 = USART2_TX, PA3 = USART2_RX: alternate function 7 (STM32F401
/// data sheet, alternate function mapping table).
const AF7: u32 = 7;
const MODER_AF: u32 = 0b10;
const PUPDR_PULL_UP: u32 = 0b01;

/// The ring's producer end, used only by the USART2 interrupt handler.
static RX_PRODUCER: Mutex<RefCell<Option<Producer<'static, u8>>>> = Mutex::new(RefCell::new(None));
/// Bytes received while the ring was full, and thrown away.
static RX_DROPPED: AtomicU32 = AtomicU32::new(0);
/// Overruns: a byte arrived before the previous one was read.
static RX_OVERRUNS: AtomicU32 = AtomicU32::new(0);

/// The USART2 driver; implements [`corral_board_common::SerialPort`].
pub struct Usart2 {
    rx: Consumer<'static, u8>,
}

impl Usart2 {
    /// Configures PA2/PA3 and USART2 for 115200 8N1 with the receive
    /// interrupt, and takes the consumer end of `ring`. Needs the clocks
    /// from [`rcc`] running.
    pub(crate) fn init(ring: &'static mut RxRing) -> Usart2 {
        let (producer, consumer) = ring.split();
        critical_section::with(|cs| RX_PRODUCER.borrow(cs).replace(Some(producer)));
        configure(CR1_RXNEIE);
        // SAFETY: the handler only touches the producer (behind a critical
        // section) and registers this driver owns.
        unsafe { NVIC::unmask(Interrupt::USART2) };
        Usart2 { rx: consumer }
    }

    /// Received bytes are waiting in the ring.
    pub fn rx_ready(&self) -> bool {
        self.rx.ready()
    }

    /// Bytes thrown away since boot because the receive ring was full: the
    /// firmware fell behind its serial input.
    pub fn rx_dropped(&self) -> u32 {
        RX_DROPPED.load(Ordering::Relaxed)
    }

    /// Receive overruns since boot (USART_SR.ORE): a byte was lost because
    /// the interrupt was held off for longer than a character time.
    pub fn rx_overruns(&self) -> u32 {
        RX_OVERRUNS.load(Ordering::Relaxed)
    }
}

impl corral_board_common::SerialPort for Usart2 {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            match self.rx.dequeue() {
                Some(byte) => *slot = byte,
                None => break,
            }
            n += 1;
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

/// Routes PA2/PA3 to USART2, sets 115200 8N1 and the given CR1 interrupt
/// enables, and turns the USART on.
fn configure(interrupts: u32) {
    // Alternate function number first, then the mode, so the pins never
    // carry another function in between. A pull-up on RX keeps the line
    // idle (high) if nothing drives it.
    GPIOA_AFRL.modify(|v| (v & !(0xff << 8)) | (AF7 << 8) | (AF7 << 12));
    GPIOA_PUPDR.modify(|v| (v & !(0b11 << 6)) | (PUPDR_PULL_UP << 6));
    GPIOA_MODER.modify(|v| (v & !(0b1111 << 4)) | (MODER_AF << 4) | (MODER_AF << 6));

    USART_CR1.write(0);
    // CR2: 1 stop bit; CR3: no flow control, no DMA, no error interrupt.
    USART_CR2.write(0);
    USART_CR3.write(0);
    USART_BRR.write(BRR_VALUE);
    // CR1.M = 0 and PCE = 0: 8 data bits, no parity.
    USART_CR1.write(CR1_UE | CR1_TE | CR1_RE | interrupts);
}

/// Makes sure the transmitter works, without disturbing a configured USART.
/// For the panic and fault paths, which may run before the board is up.
pub(crate) fn ensure_tx_enabled() {
    // With its clock off, the USART reads as all zeros.
    if USART_CR1.read() & (CR1_UE | CR1_TE) != CR1_UE | CR1_TE {
        rcc::init();
        rcc::enable_peripheral_clocks();
        configure(0);
    }
}

/// Sends `data`, waiting until the data register is empty before each byte.
/// Usable from any context, including the panic handler, because
/// transmission keeps no state in RAM.
pub(crate) fn write_blocking(data: &[u8]) {
    for &byte in data {
        while USART_SR.read() & SR_TXE == 0 {}
        USART_DR.write(u32::from(byte));
    }
}

/// Waits until the last written byte has left the shift register
/// (USART_SR.TC). Returns at once if the USART is off.
pub(crate) fn flush() {
    if USART_CR1.read() & (CR1_UE | CR1_TE) != CR1_UE | CR1_TE {
        return;
    }
    while USART_SR.read() & SR_TC == 0 {}
}

#[interrupt]
fn USART2() {
    critical_section::with(|cs| {
        let mut producer = RX_PRODUCER.borrow_ref_mut(cs);
        loop {
            let sr = USART_SR.read();
            if sr & (SR_RXNE | SR_ORE) == 0 {
                return;
            }
            // Reading SR, then DR clears RXNE and the error flags (ORE, NF,
            // FE, PE). A damaged byte is still passed on: the protocol's CRC
            // rejects the frame.
            let byte = USART_DR.read() as u8;
            if sr & SR_ORE != 0 {
                RX_OVERRUNS.fetch_add(1, Ordering::Relaxed);
            }
            match producer.as_mut() {
                Some(p) if p.ready() => {
                    let _ = p.enqueue(byte);
                }
                _ => {
                    RX_DROPPED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
}
