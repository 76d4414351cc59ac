//! OFA's elastic kernel: a smaller depthwise kernel is the centre of the larger one,
//! passed through a learned per-block transform (`7to5_matrix`, `5to3_matrix`).

use burn::module::Param;
use burn::prelude::*;

/// The per-block kernel transform matrices, shared across channels.
#[derive(Module, Debug)]
pub struct KernelTransforms {
    /// 7×7 centre crop (25 values) → 5×5 kernel, `[25, 25]`.
    pub m7to5: Param<Tensor<2>>,
    /// 5×5 centre crop (9 values) → 3×3 kernel, `[9, 9]`.
    pub m5to3: Param<Tensor<2>>,
}

impl KernelTransforms {
    /// Identity transforms (a plain centre crop), as OFA initialises them.
    pub fn identity(device: &Device) -> Self {
        KernelTransforms { m7to5: Param::from_tensor(Tensor::eye(25, device)), m5to3: Param::from_tensor(Tensor::eye(9, device)) }
    }

    /// The depthwise filter for kernel size `k` from the stored 7×7 filter.
    ///
    /// `filter` is `[C, 1, 7, 7]`; the result `[C, 1, k, k]`. k = 5 takes the centre 5×5,
    /// flattens it row-major and multiplies by `M7to5ᵀ`; k = 3 does that first, then the same
    /// with the centre 3×3 of the result and `M5to3ᵀ`.
    pub fn active_filter(&self, filter: Tensor<4>, k: usize) -> Tensor<4> {
        let steps = [(5, &self.m7to5), (3, &self.m5to3)];
        let mut filter = filter; // [C, 1, 7, 7]
        for (size, matrix) in steps.into_iter().take_while(|(size, _)| *size >= k) {
            filter = shrink(filter, size, matrix.val());
        }
        filter // [C, 1, k, k]
    }
}

/// Centre-crops `[C, 1, K, K]` to `size` and applies `matrix` to each flattened kernel.
fn shrink(filter: Tensor<4>, size: usize, matrix: Tensor<2>) -> Tensor<4> {
    let [channels, _, big, _] = filter.dims();
    let start = (big - size) / 2;
    let crop = start..start + size;
    let centre = filter.slice([0..channels, 0..1, crop.clone(), crop]); // [C, 1, size, size]
    let flat = centre.reshape([channels, size * size]); // [C, size²]
    let mixed = flat.matmul(matrix.transpose()); // [C, size²]
    mixed.reshape([channels, 1, size, size]) // [C, 1, size, size]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_transforms_are_centre_crops() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 49).map(|v| v as f32).collect();
        let filter = Tensor::<1>::from_floats(values.as_slice(), &device).reshape([2, 1, 7, 7]);
        let transforms = KernelTransforms::identity(&device);
        let k3 = transforms.active_filter(filter.clone(), 3);
        assert_eq!(k3.dims(), [2, 1, 3, 3]);
        let expected = filter.clone().slice([0..2, 0..1, 2..5, 2..5]);
        k3.into_data().assert_eq(&expected.into_data(), true);
        let k7 = transforms.active_filter(filter.clone(), 7);
        k7.into_data().assert_eq(&filter.into_data(), true);
    }
}
