//! Why a simulation could not run.

/// Why a simulation could not run.
#[derive(Debug)]
pub enum SimError {
    /// The scenario is invalid (`scenario_invalid`).
    Scenario(String),
    /// A core operation failed where the simulator needed it to succeed (`core_failure`).
    Core(ekg_core::Error),
    /// A bug in the simulator (`internal`).
    Internal(String),
    /// Writing the output failed (`output_failed`).
    Output(String),
}

impl SimError {
    pub(crate) fn core(e: ekg_core::Error) -> SimError {
        SimError::Core(e)
    }

    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::Scenario(_) => "scenario_invalid",
            SimError::Core(_) => "core_failure",
            SimError::Internal(_) => "internal",
            SimError::Output(_) => "output_failed",
        }
    }
}

impl core::fmt::Display for SimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SimError::Scenario(m) | SimError::Internal(m) | SimError::Output(m) => write!(f, "{}: {m}", self.code()),
            SimError::Core(e) => write!(f, "{}: {} ({})", self.code(), e.code(), e.detail()),
        }
    }
}

impl std::error::Error for SimError {}
