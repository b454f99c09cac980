package fst4j.autograd;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.autograd.SparseConfig.Variant;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Method names with the authors' changes on top ("fst3_ir+patterns"): parsing, naming and which combinations apply. */
class SparseConfigRecipeTest {

    /** Every method with every ordered selection of variants: either it applies and its key parses back to it, or it is refused. */
    @Test
    void everyCombinationRoundTripsOrIsRefusedWithAReason() {
        int applied = 0, refused = 0;
        for (Method m : Method.values())
            for (int mask = 0; mask < 8; mask++) {
                List<Variant> vs = new ArrayList<>();
                for (Variant v : Variant.values()) if ((mask >> v.ordinal() & 1) != 0) vs.add(v);
                SparseConfig c = m.config();
                String why = null;
                for (Variant v : vs) {
                    why = why != null ? why : v.whyNot(c);
                    if (why == null) c = v.apply(c, 1);
                }
                if (why == null) {
                    Recipe r = new Recipe(m, vs);
                    assertEquals(r, Recipe.parse(r.key()));
                    assertEquals(r, Recipe.parse(r.key().toUpperCase().replace('_', '-')));
                    applied++;
                } else {
                    String w = why;
                    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Recipe(m, vs));
                    assertTrue(e.getMessage().contains(w), e.getMessage());
                    refused++;
                }
            }
        // FST3 and FST3_IR take any subset their slots allow; DENSE takes none
        assertTrue(applied > Method.values().length && refused > 0);
        assertDoesNotThrow(() -> Recipe.parse("fst3_ir+wt-from-sw+shift0.03+patterns"));
        assertThrows(IllegalArgumentException.class, () -> Recipe.parse("fst3+shift0.03"));   // FST3 has no IR
        assertThrows(IllegalArgumentException.class, () -> Recipe.parse("fst3_ir+"));
    }

    /** A recipe changes exactly the slots its variants name, leaves dense layers alone, and names the layer after itself. */
    @Test
    void applyChangesOnlyPrunedLayersAndTheNamedSlots() {
        Recipe r = Recipe.parse("fst3_ir+shift0.03+wt-from-sw");
        SparseConfig ir = Method.FST3_IR.config(), c = r.apply(ir, 9);
        assertEquals(ir.withIr(SparseConfig.Shift.AUTHORS).withWtFromSparse(true).withName("fst3_ir+shift0.03+wt-from-sw"), c);
        SparseConfig d = Method.DENSE.config();
        assertSame(d, r.apply(d, 9));
        assertSame(ir, Recipe.of(Method.FST3_IR).apply(ir, 9));
        assertEquals("fst3_ir", Recipe.of(Method.FST3_IR).key());
    }
}
