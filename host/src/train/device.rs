//! Where training runs: burn's CPU backend (the default, every build), or GPUs through burn's
//! CUDA and wgpu backends in builds with `--features cuda` / `--features wgpu`. Several devices
//! train data-parallel: each takes an equal share of every batch, and the gradients are summed
//! on the first before the optimiser step.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use burn::tensor::Device;

/// One device a user can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDevice {
    /// burn's CPU backend (`cpu`).
    Cpu,
    /// A CUDA GPU (`cuda` = `cuda:0`, `cuda:N`).
    Cuda(usize),
    /// A GPU through wgpu (`wgpu`: the best one wgpu finds; `wgpu:N`: the N-th discrete GPU).
    Wgpu(Option<usize>),
}

impl FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => {
                let i = i.parse::<usize>().map_err(|_| {
                    format!("device {s:?}: the index after ':' must be a whole number")
                })?;
                (k, Some(i))
            }
            None => (s, None),
        };
        match (kind, index) {
            ("cpu", None) => Ok(ComputeDevice::Cpu),
            ("cuda", i) => Ok(ComputeDevice::Cuda(i.unwrap_or(0))),
            ("wgpu", i) => Ok(ComputeDevice::Wgpu(i)),
            _ => Err(format!(
                "unknown device {s:?}; expected cpu, cuda, cuda:N, wgpu or wgpu:N"
            )),
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Cpu => write!(f, "cpu"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
            ComputeDevice::Wgpu(None) => write!(f, "wgpu"),
            ComputeDevice::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
        }
    }
}

impl ComputeDevice {
    /// burn's device, with autodiff, or why this build cannot reach it.
    pub fn training_device(&self) -> Result<Device> {
        Ok(self.device()?.autodiff())
    }

    fn device(&self) -> Result<Device> {
        match *self {
            ComputeDevice::Cpu => Ok(Device::flex()),
            ComputeDevice::Cuda(i) => cuda(i),
            ComputeDevice::Wgpu(i) => wgpu(i),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(index: usize) -> Result<Device> {
    bail!(
        "cuda:{index}: this sqz was built without CUDA; rebuild it with \
         `cargo build --release -p sqz-host --features cuda` (needs the CUDA driver at run time)"
    )
}

#[cfg(feature = "wgpu")]
fn wgpu(index: Option<usize>) -> Result<Device> {
    use burn::tensor::DeviceKind;
    Ok(Device::wgpu(match index {
        Some(i) => DeviceKind::DiscreteGpu(i),
        None => DeviceKind::DefaultDevice,
    }))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_: Option<usize>) -> Result<Device> {
    bail!(
        "wgpu: this sqz was built without wgpu; rebuild it with \
         `cargo build --release -p sqz-host --features wgpu`"
    )
}

/// The rows of a batch of `n` each of `k` devices takes: equal shares, the first ones one
/// larger when `n` does not divide.
pub fn shares(n: usize, k: usize) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = n / k + usize::from(i < n % k);
            start += len;
            start - len..start
        })
        .collect()
}

/// Refuses a device list training cannot use.
pub fn check_devices(devices: &[ComputeDevice], batch: usize) -> Result<()> {
    if devices.is_empty() {
        bail!("no device to train on");
    }
    for (i, d) in devices.iter().enumerate() {
        if *d != ComputeDevice::Cpu && devices[..i].contains(d) {
            bail!("device {d} is named twice");
        }
    }
    if devices.len() > batch {
        bail!(
            "{} devices for batches of {batch}: each device needs at least one image",
            devices.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        for s in ["cpu", "cuda:0", "cuda:3", "wgpu", "wgpu:1"] {
            assert_eq!(s.parse::<ComputeDevice>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<ComputeDevice>(), Ok(ComputeDevice::Cuda(0)));
        let err = "tpu:0".parse::<ComputeDevice>().unwrap_err();
        assert!(err.contains("expected cpu"), "{err}");
        assert!("cuda:x".parse::<ComputeDevice>().is_err());
    }

    #[test]
    fn device_lists_refuse_a_gpu_named_twice() {
        use ComputeDevice::*;
        assert!(check_devices(&[Cuda(0), Cuda(1)], 64).is_ok());
        let err = check_devices(&[Cuda(0), Cuda(0)], 64).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn shares_cover_the_batch_in_order() {
        assert_eq!(shares(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shares(128, 2), vec![0..64, 64..128]);
        assert!(check_devices(&[ComputeDevice::Cpu; 3], 2).is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_build_without_cuda_says_how_to_get_it() {
        let err = ComputeDevice::Cuda(0).training_device().unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
