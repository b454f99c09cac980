package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** A write of several values into an expanded view (its elements share memory) is refused, as in PyTorch, not last-wins. */
class ExpandedWriteTest {
    @Test
    void anInPlaceAddOrCopyIntoAnExpandedViewIsRefused() {
        try (Scope s = Scope.open()) {
            Tensor base = Tensor.zeros(1, 3), e = base.expand(2, 3);
            IllegalArgumentException x = assertThrows(IllegalArgumentException.class, () -> e.addInPlace(Tensor.arange(6).reshape(2, 3)));
            assertTrue(x.getMessage().contains("share memory (stride 0 along axis 0"), x.getMessage());
            assertThrows(IllegalArgumentException.class, () -> e.copyFrom(Tensor.ones(2, 3)));
            assertArrayEquals(new float[3], base.toFloatArray(), "base unchanged");
            e.fill(2);                                               // one value everywhere is fine
            assertArrayEquals(new float[]{2, 2, 2}, base.toFloatArray());
            base.expand(1, 3).copyFrom(Tensor.ones(3));               // size-1 axes are not shared
            Tensor self = Tensor.ones(2, 3);
            self.copyFrom(self);
        }
    }
}
