//! The finance tools' arithmetic: net present value, internal rate of return, loan annuity.

use crate::error::FinanceError;

/// Net present value of `cash_flows` (the first at t = 0, then one per period) at `discount_rate`.
pub fn npv(cash_flows: &[f64], discount_rate: f64) -> Result<f64, FinanceError> {
    check_flows(cash_flows)?;
    if !discount_rate.is_finite() || discount_rate <= -1.0 {
        return Err(FinanceError::DiscountRate(discount_rate));
    }
    Ok(present_value(cash_flows, discount_rate))
}

/// Internal rate of return: the rate at which the net present value of `cash_flows` is zero.
///
/// Bisection over (-1, 1e6]: slow but sure, 200 halvings at most. When the flows change sign more
/// than once there can be several rates; this returns the one found in the first bracketing interval.
pub fn irr(cash_flows: &[f64]) -> Result<f64, FinanceError> {
    check_flows(cash_flows)?;
    let has_positive = cash_flows.iter().any(|f| *f > 0.0);
    let has_negative = cash_flows.iter().any(|f| *f < 0.0);
    if !(has_positive && has_negative) {
        return Err(FinanceError::NoSignChange);
    }

    let mut low = -0.999_999;
    let mut high = 1.0;
    let at_low = present_value(cash_flows, low);
    while at_low.signum() == present_value(cash_flows, high).signum() {
        high *= 2.0;
        if high > 1e6 {
            return Err(FinanceError::NoRate);
        }
    }
    for _ in 0..200 {
        let middle = (low + high) / 2.0;
        let at_middle = present_value(cash_flows, middle);
        if at_middle == 0.0 || (high - low) < 1e-12 {
            return Ok(middle);
        }
        if at_middle.signum() == at_low.signum() {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok((low + high) / 2.0)
}

/// Monthly payment and total interest of a fixed-rate loan repaid monthly over `years`.
pub fn loan_payment(principal: f64, annual_rate: f64, years: f64) -> Result<(f64, f64), FinanceError> {
    if !principal.is_finite() || principal <= 0.0 {
        return Err(FinanceError::Principal(principal));
    }
    if !annual_rate.is_finite() || annual_rate < 0.0 {
        return Err(FinanceError::AnnualRate(annual_rate));
    }
    let months = (years * 12.0).round();
    if !years.is_finite() || months < 1.0 {
        return Err(FinanceError::Years(years));
    }

    let monthly_rate = annual_rate / 12.0;
    let payment = if monthly_rate == 0.0 {
        principal / months
    } else {
        principal * monthly_rate / (1.0 - (1.0 + monthly_rate).powf(-months))
    };
    Ok((round_cents(payment), round_cents(payment * months - principal)))
}

fn check_flows(cash_flows: &[f64]) -> Result<(), FinanceError> {
    if cash_flows.is_empty() {
        return Err(FinanceError::NoCashFlows);
    }
    if let Some(index) = cash_flows.iter().position(|f| !f.is_finite()) {
        return Err(FinanceError::CashFlow(index));
    }
    Ok(())
}

fn present_value(cash_flows: &[f64], rate: f64) -> f64 {
    cash_flows
        .iter()
        .enumerate()
        .map(|(t, flow)| flow / (1.0 + rate).powi(t as i32))
        .sum()
}

fn round_cents(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npv_discounts_from_period_zero() {
        let value = npv(&[-100.0, 60.0, 60.0], 0.1).unwrap();
        assert!((value - 4.1322314).abs() < 1e-6, "{value}");
        assert_eq!(npv(&[250.0], 0.5).unwrap(), 250.0);
        assert!((npv(&[0.0, 110.0], 0.1).unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn npv_refuses_bad_inputs() {
        assert!(matches!(npv(&[], 0.1), Err(FinanceError::NoCashFlows)));
        assert!(matches!(npv(&[1.0], -1.0), Err(FinanceError::DiscountRate(_))));
        assert!(matches!(npv(&[1.0, f64::NAN], 0.1), Err(FinanceError::CashFlow(1))));
    }

    #[test]
    fn irr_finds_the_zero_of_npv() {
        let rate = irr(&[-100.0, 60.0, 60.0]).unwrap();
        assert!((rate - 0.130_662).abs() < 1e-5, "{rate}");
        assert!(npv(&[-100.0, 60.0, 60.0], rate).unwrap().abs() < 1e-6);

        let losing = irr(&[-100.0, 30.0, 30.0]).unwrap();
        assert!(losing < 0.0 && npv(&[-100.0, 30.0, 30.0], losing).unwrap().abs() < 1e-6);
        let steep = irr(&[-1.0, 50.0]).unwrap();
        assert!((steep - 49.0).abs() < 1e-6, "{steep}");
    }

    #[test]
    fn irr_needs_a_sign_change() {
        assert!(matches!(irr(&[100.0, 60.0]), Err(FinanceError::NoSignChange)));
        assert!(matches!(irr(&[]), Err(FinanceError::NoCashFlows)));
    }

    #[test]
    fn loan_payment_matches_the_annuity_formula() {
        // 200,000 over 30 years at 6%: the textbook 1,199.10 a month.
        let (payment, interest) = loan_payment(200_000.0, 0.06, 30.0).unwrap();
        assert_eq!(payment, 1199.10);
        assert!((interest - 231_676.38).abs() < 1.0, "{interest}");
        assert_eq!(loan_payment(1200.0, 0.0, 1.0).unwrap(), (100.0, 0.0));
        assert!(matches!(loan_payment(0.0, 0.05, 1.0), Err(FinanceError::Principal(_))));
        assert!(matches!(loan_payment(100.0, 0.05, 0.0), Err(FinanceError::Years(_))));
    }
}
