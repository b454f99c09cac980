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
        // the non-empty selections each method takes: FST3_IR all 7; FST3 (no IR) and FST3_IR_PATTERNS (patterns already)
        // 3; FST2, WG, WX only S(W^T) from S(W); the rest none (FST_CODE has all three, TSM and the G rules no pruned W^T)
        assertEquals(Method.values().length + 7 + 3 + 3 + 1 + 1 + 1, applied);
        assertEquals(Method.values().length * 8, applied + refused);
        // the order written does not matter: one name per configuration
        assertEquals(Recipe.parse("fst3_ir+patterns+shift0.03+wt-from-sw"), Recipe.parse("fst3_ir+wt-from-sw+shift0.03+patterns"));
        assertEquals("fst3_ir+patterns+shift0.03", Recipe.parse("fst3_ir+shift0.03+patterns").key());
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
        // a layer without the slot a variant replaces keeps it: here no IR for the 0.03 shift, the W^T change applied
        SparseConfig noIr = ir.withIr(null);
        assertEquals(noIr.withWtFromSparse(true).withName("fst3_ir+shift0.03+wt-from-sw"), r.apply(noIr, 9));
        SparseConfig noXt = Method.FST2.config();
        assertSame(noXt, Recipe.parse("fst3_ir+patterns").apply(noXt, 9));
    }
}
