package fst4j.nn.experiment;

import fst4j.autograd.ConvParams;
import fst4j.autograd.SparseConfig;
import fst4j.nn.Conv2d;
import fst4j.tensor.Conv;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Table 2's per-layer operands take each layer's own geometry: a non-square, per-axis, dilated layer gets dY of its
 * output's size and the im2col of its own kernel, stride, padding and dilation (the one the old square reading, the
 * height axis's values for both, got wrong); a grouped layer is refused by name.
 */
class PruneCostGeometryTest {
    @Test
    void nonSquareDilatedLayersUseTheirOwnGeometry() {
        ConvParams p = new ConvParams(2, 1, 2, 0, 1, 2, 1);
        try (Scope s = Scope.open(); Conv2d c = new Conv2d(3, 8, new int[]{5, 3}, p, false, SparseConfig.Method.FST3_IR.config(), new Rng(0))) {
            Tensor x = new Rng(1).normal(0, 1, 2, 3, 11, 13);
            PruneCost.Layer l = PruneCost.layerOf("conv", c, x, new Rng(2));
            int ho = Conv.outSize(11, 5, 2, 2, 1), wo = Conv.outSize(13, 3, 1, 0, 2);   // 6 x 9
            assertEquals(ho * wo, l.planeOut());
            assertArrayEquals(new int[]{8, 2 * ho * wo}, l.dy().shape());
            assertArrayEquals(new int[]{8, 3 * 5 * 3}, l.w().shape());
            try (Tensor cols = l.im2col(); Tensor want = Conv.im2col(x, 5, 3, 2, 1, 2, 0, 1, 2)) {
                assertArrayEquals(want.shape(), cols.shape());
                assertArrayEquals(want.toFloatArray(), cols.toFloatArray());
            }
        }
    }

    @Test
    void groupedLayersAreRefusedByName() {
        try (Scope s = Scope.open(); Conv2d c = new Conv2d(8, 8, new int[]{3, 3}, ConvParams.of(1, 1, 1, 4), false, SparseConfig.Method.FST3_IR.config(), new Rng(0))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> PruneCost.layerOf("block.conv", c, new Rng(1).normal(0, 1, 2, 8, 6, 6), new Rng(2)));
            assertTrue(e.getMessage().contains("layer block.conv has groups 4"), e.getMessage());
        }
    }
}
