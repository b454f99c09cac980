package fst4j.nn;

import fst4j.autograd.ConvParams;
import fst4j.autograd.SparseConfig;
import fst4j.tensor.Rng;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * nn.Conv2d's geometry as torch.nn.Conv2d reports it: kernelSize(), stride(), padding(), dilation() with both axes
 * (height, then width) and groups(), for a non-square, per-axis, dilated, grouped layer and for a square one.
 */
class Conv2dAccessorsTest {
    @Test
    void everyAxisIsReported() {
        try (Conv2d c = new Conv2d(6, 9, new int[]{5, 3}, new ConvParams(2, 1, 2, 0, 1, 3, 3), true, SparseConfig.Method.DENSE.config(), new Rng(0))) {
            assertEquals(new Conv2d.Pair(5, 3), c.kernelSize());
            assertEquals(new Conv2d.Pair(2, 1), c.stride());
            assertEquals(new Conv2d.Pair(2, 0), c.padding());
            assertEquals(new Conv2d.Pair(1, 3), c.dilation());
            assertEquals(3, c.groups());
            assertFalse(c.plain());
            assertFalse(c.kernelSize().square());
            assertEquals("5x3", c.kernelSize().toString());
            assertArrayEquals(new int[]{9, 2, 5, 3}, c.weight().shape());
        }
        try (Conv2d c = new Conv2d(4, 8, 3, 2, 1, false, SparseConfig.Method.FST3_IR.config(), new Rng(0))) {
            assertEquals(new Conv2d.Pair(3, 3), c.kernelSize());
            assertEquals(new Conv2d.Pair(2, 2), c.stride());
            assertEquals(new Conv2d.Pair(1, 1), c.padding());
            assertEquals(new Conv2d.Pair(1, 1), c.dilation());
            assertEquals(1, c.groups());
            assertTrue(c.plain());
        }
    }
}
