//! Reset and clock control (RM0368 section 6, "RCC"): the clock tree and the
//! peripheral clock gates.
//!
//! The board runs from the internal 16 MHz RC oscillator (HSI) through the
//! main PLL at 84 MHz, the STM32F401's maximum:
//!
//! ```text
//! HSI 16 MHz ─/M=8─▶ 2 MHz ─×N=168─▶ VCO 336 MHz ─/P=4─▶ SYSCLK 84 MHz
//!                                                 └─/Q=7─▶ 48 MHz (USB, unused)
//! SYSCLK ─AHB /1─▶ HCLK 84 MHz (core, flash, GPIO)
//!        ─APB1 /2─▶ PCLK1 42 MHz (USART2); APB1 timers ×2: 84 MHz (TIM5)
//!        ─APB2 /1─▶ PCLK2 84 MHz
//! ```
//!
//! HSI rather than the HSE input: an 8 MHz clock from the ST-Link reaches
//! the target's HSE input only on some Nucleo board revisions and solder
//! bridge settings, and HSI is on every one. HSI is factory-trimmed to ±1 %
//! at 25 °C (the data sheet allows more over temperature): fine for a UART,
//! whose receiver tolerates a few per cent, and for the agent's timeouts.

use crate::mmio::Reg;

/// SYSCLK and HCLK: the core clock.
pub const SYSCLK_HZ: u32 = 84_000_000;
/// PCLK1, the APB1 bus clock (USART2's kernel clock).
pub const PCLK1_HZ: u32 = SYSCLK_HZ / 2;
/// The clock of the timers on APB1 (TIM2..TIM5): twice PCLK1, because the
/// APB1 prescaler is not 1 (RM0368 section 6.2, "Clocks").
pub const APB1_TIMER_HZ: u32 = PCLK1_HZ * 2;

const RCC: usize = 0x4002_3800;
// SAFETY: RCC registers, RM0368 section 6.3.
const RCC_CR: Reg = unsafe { Reg::at(RCC) };
const RCC_PLLCFGR: Reg = unsafe { Reg::at(RCC + 0x04) };
const RCC_CFGR: Reg = unsafe { Reg::at(RCC + 0x08) };
const RCC_AHB1ENR: Reg = unsafe { Reg::at(RCC + 0x30) };
const RCC_APB1ENR: Reg = unsafe { Reg::at(RCC + 0x40) };
/// Clock control & status: LSI on/ready and the reset flags.
pub(crate) const RCC_CSR: Reg = unsafe { Reg::at(RCC + 0x74) };
// SAFETY: the flash interface's access control register, RM0368 section 3.
const FLASH_ACR: Reg = unsafe { Reg::at(0x4002_3c00) };

const CR_HSION: u32 = 1 << 0;
const CR_HSIRDY: u32 = 1 << 1;
const CR_PLLON: u32 = 1 << 24;
const CR_PLLRDY: u32 = 1 << 25;

const PLL_M: u32 = 8;
const PLL_N: u32 = 168;
/// PLLP = 0b01 divides by 4.
const PLL_P_DIV4: u32 = 0b01;
const PLL_Q: u32 = 7;
/// PLLM[5:0], PLLN[14:6], PLLP[17:16], PLLSRC[22] (0: HSI), PLLQ[27:24]. The
/// other bits are reserved and keep their reset values.
const PLLCFGR_FIELDS: u32 = 0x3f | (0x1ff << 6) | (0b11 << 16) | (1 << 22) | (0xf << 24);
const PLLCFGR_VALUE: u32 = PLL_M | (PLL_N << 6) | (PLL_P_DIV4 << 16) | (PLL_Q << 24);
const _: () = assert!(16_000_000 / PLL_M * PLL_N / 4 == SYSCLK_HZ);
// VCO input 1..2 MHz (2 MHz limits jitter), VCO output 192..432 MHz.
const _: () = assert!(16_000_000 / PLL_M == 2_000_000);

/// SW[1:0] selects the system clock, SWS[3:2] reports it: 0 HSI, 2 PLL.
const CFGR_SW: u32 = 0b11;
const CFGR_SW_PLL: u32 = 0b10;
const CFGR_SWS: u32 = 0b11 << 2;
const CFGR_SWS_HSI: u32 = 0b00 << 2;
const CFGR_SWS_PLL: u32 = 0b10 << 2;
/// HPRE[7:4] (AHB), PPRE1[12:10] (APB1), PPRE2[15:13] (APB2).
const CFGR_PRESCALERS: u32 = (0xf << 4) | (0b111 << 10) | (0b111 << 13);
/// PPRE1 = 0b100: APB1 = HCLK / 2 (at most 42 MHz). AHB and APB2 stay /1.
const CFGR_PPRE1_DIV2: u32 = 0b100 << 10;

/// Two flash wait states: RM0368's wait-state table (section 3, "Embedded
/// Flash memory interface") asks for 2 WS at 60 MHz < HCLK <= 84 MHz with a
/// 2.7..3.6 V supply (the Nucleo's 3.3 V).
const ACR_LATENCY_2WS: u32 = 2;
const ACR_LATENCY: u32 = 0xf;
const ACR_PRFTEN: u32 = 1 << 8;
const ACR_ICEN: u32 = 1 << 9;
const ACR_DCEN: u32 = 1 << 10;

const AHB1ENR_GPIOAEN: u32 = 1 << 0;
const APB1ENR_TIM5EN: u32 = 1 << 3;
const APB1ENR_USART2EN: u32 = 1 << 17;

/// Switches the system clock to the PLL at 84 MHz (see the module docs).
/// Does nothing if the PLL already drives it, so the panic path can call it
/// whether or not the board was brought up.
///
/// The regulator needs no change: PWR_CR.VOS resets to scale 2, which allows
/// up to 84 MHz on the STM32F401 (RM0368 section 5, "PWR").
pub(crate) fn init() {
    if RCC_CFGR.read() & CFGR_SWS == CFGR_SWS_PLL {
        return;
    }
    // HSI is on after reset; make sure, in case a bootloader ran first.
    RCC_CR.modify(|v| v | CR_HSION);
    while RCC_CR.read() & CR_HSIRDY == 0 {}
    // PLLCFGR may only be written while the PLL is off, and the PLL may only
    // be turned off while it does not drive SYSCLK: run from HSI meanwhile.
    RCC_CFGR.modify(|v| v & !CFGR_SW);
    while RCC_CFGR.read() & CFGR_SWS != CFGR_SWS_HSI {}
    RCC_CR.modify(|v| v & !CR_PLLON);
    while RCC_CR.read() & CR_PLLRDY != 0 {}

    RCC_PLLCFGR.modify(|v| (v & !PLLCFGR_FIELDS) | PLLCFGR_VALUE);
    RCC_CR.modify(|v| v | CR_PLLON);
    while RCC_CR.read() & CR_PLLRDY == 0 {}

    // More wait states before the clock goes up, and read back: the new
    // latency must be in effect before the switch (RM0368 section 3).
    FLASH_ACR.write(ACR_LATENCY_2WS | ACR_PRFTEN | ACR_ICEN | ACR_DCEN);
    while FLASH_ACR.read() & ACR_LATENCY != ACR_LATENCY_2WS {}

    // APB1 must not exceed 42 MHz: set its divider before the switch.
    RCC_CFGR.modify(|v| (v & !CFGR_PRESCALERS) | CFGR_PPRE1_DIV2);
    RCC_CFGR.modify(|v| (v & !CFGR_SW) | CFGR_SW_PLL);
    while RCC_CFGR.read() & CFGR_SWS != CFGR_SWS_PLL {}
}

/// Turns on the clocks of GPIO port A (USART2's pins), USART2 and TIM5.
pub(crate) fn enable_peripheral_clocks() {
    RCC_AHB1ENR.modify(|v| v | AHB1ENR_GPIOAEN);
    RCC_APB1ENR.modify(|v| v | APB1ENR_TIM5EN | APB1ENR_USART2EN);
    // Erratum "Delay after an RCC peripheral clock enabling" (errata sheet
    // ES0182): the first access to a peripheral must wait a few cycles after
    // its clock is enabled. Reading the register back and a DSB do.
    let _ = RCC_APB1ENR.read();
    cortex_m::asm::dsb();
}
