package fst4j.nn;

import fst4j.autograd.Profile;
import fst4j.autograd.SparseConfig;
import fst4j.shim.Cuda;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The step-timing tool gpu/run.sh and gpu/step.sh use, run tiny (on the emulator in CI) so that it works when a GPU is lent. */
class CudaStepTimingTest {
    @Test
    void timesTrainingStepsAndReportsAFiniteLoss() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        CudaStepTiming.Result r = CudaStepTiming.time("resnetSmall", 2, 1, 2);
        assertEquals(2, r.steps());
        assertTrue(r.medianMs() > 0 && r.minMs() <= r.medianMs() && r.medianMs() <= r.maxMs(), r.toString());
        assertTrue(Double.isFinite(r.lastLoss()) && r.lastLoss() > 0, r.toString());
        assertNull(r.profileLine());
        assertThrows(IllegalArgumentException.class, () -> CudaStepTiming.time("vgg", 2, 0, 1));
    }

    @Test
    void parsesSpecs() {
        CudaStepTiming.Spec s = CudaStepTiming.Spec.parse("resnet18in:256");
        assertEquals(new CudaStepTiming.Spec("resnet18in", 256, 3, 10, SparseConfig.Method.DENSE, 224), s);
        assertEquals(1000, s.classes());
        assertEquals(new CudaStepTiming.Spec("resnet18", 128, 2, 5, SparseConfig.Method.FST3_IR, 32), CudaStepTiming.Spec.parse("resnet18:128:2:5:fst3-ir"));
        assertEquals(new CudaStepTiming.Spec("resnet18in", 4, 0, 1, SparseConfig.Method.FST2, 48), CudaStepTiming.Spec.parse("resnet18in:4:0:1:FST2:48"));
        assertEquals(10, CudaStepTiming.Spec.parse("resnetSmall:8").classes());
        for (String bad : new String[] {"vgg:8", "resnet18:8:1", "resnet18:0", "resnet18:8:1:1:nope", "resnet18:8:1:1:dense:0", "resnet18:8:1:1:dense:32:7"})
            assertThrows(IllegalArgumentException.class, () -> CudaStepTiming.Spec.parse(bad), bad);
    }

    /** The ImageNet-stem ResNet-18 with a sparse method, at a tiny image size, with the per-part profile and a time cap. */
    @Test
    void timesTheImageNetResNet18WithASparseMethodAndProfilesIt() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        var spec = CudaStepTiming.Spec.parse("resnet18in:2:0:3:FST3_IR:32");
        List<String> progress = new ArrayList<>();
        // a cap far below one step's time: exactly one timed step, and the line says it was cut
        CudaStepTiming.Result r = CudaStepTiming.time(spec, 1e-9, 1, progress::add);
        assertEquals(1, r.steps(), r.toString());
        assertEquals(3, progress.size(), progress.toString());   // the step, the STEP line before the profiled step, its KPROF
        String line = r.toString();
        assertEquals("STEP " + line, progress.get(1));
        String kprof = progress.get(2);   // the kernel profile of the profiled step: batch norm and the IR shift among its rows
        assertTrue(kprof.startsWith("KPROF resnet18in FST3_IR batch=2 size=32, device time summed over 1 profiled step(s):"), kprof);
        for (String row : new String[] {"fst_k_bn_apply ", "fst_k_shift_gather ", "total "})
            assertTrue(kprof.lines().anyMatch(l -> l.startsWith(row)), row + " in\n" + kprof);
        assertTrue(line.matches("resnet18in FST3_IR batch=2 size=32 warmup=0 steps=1 of=3 median_ms=\\S+ min_ms=\\S+ max_ms=\\S+ img_per_s=\\S+ loss=\\S+ params=11689512"), line);   // torchvision's resnet18 count, as torch_step_gpu.py checks
        assertTrue(Double.isFinite(r.lastLoss()) && r.lastLoss() > 0, line);
        // the profiled step: every Eq. 1-3 part and the sparsification of FST3_IR were booked, and they fit in the step
        String p = r.profileLine();
        assertNotNull(p);
        assertTrue(p.startsWith("resnet18in FST3_IR batch=2 size=32 steps=1 synced_per_part EQ1_ms="), p);
        assertEquals(1, r.profiledSteps());
        double sum = 0;
        for (Profile.Part part : new Profile.Part[] {Profile.Part.EQ1, Profile.Part.EQ2, Profile.Part.EQ3, Profile.Part.SPARSIFY, Profile.Part.ELEMENTWISE, Profile.Part.OPTIMIZER})
            assertTrue(r.profileMs().get(part) > 0, part + ": " + p);
        for (double v : r.profileMs().values()) sum += v;
        assertTrue(sum <= r.profiledStepMs() * 1.0001, p);
    }
}
