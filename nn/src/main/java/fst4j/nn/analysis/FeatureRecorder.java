package fst4j.nn.analysis;

import fst4j.nn.Conv2d;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.Sparse;
import fst4j.tensor.Tensor;

import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * Sees the input of every convolution of a model during forwards on this thread, through {@link Conv2d#INPUT_HOOK}:
 * <pre>{@code
 * try (FeatureRecorder r = new FeatureRecorder(model, (layer, x) -> use(layer, x.toFloatArray(), x.shape()))) {
 *     model.forward(batch);
 * }
 * }</pre>
 * Layers are named as in {@link Models#sparseLayers} ("0", "3.conv1", ...); convolutions of other models are
 * ignored. The tensor is only valid during the call (copy what you keep). Closing restores the previous hook.
 */
public final class FeatureRecorder implements AutoCloseable {
    private final BiConsumer<Conv2d, Tensor> previous;
    private final Map<Conv2d, String> names = new IdentityHashMap<>();

    public FeatureRecorder(Module model, BiConsumer<String, Tensor> listener) {
        for (var e : convLayers(model).entrySet()) names.put(e.getValue(), e.getKey());
        previous = Conv2d.INPUT_HOOK.get();
        Conv2d.INPUT_HOOK.set((conv, x) -> {
            String n = names.get(conv);
            if (n != null) listener.accept(n, x);
        });
    }

    /** The model's convolutions by dotted name, in forward order. */
    public static LinkedHashMap<String, Conv2d> convLayers(Module model) {
        LinkedHashMap<String, Conv2d> out = new LinkedHashMap<>();
        for (Map.Entry<String, Sparse> e : Models.sparseLayers(model).entrySet())
            if (e.getValue() instanceof Conv2d c) out.put(e.getKey(), c);
        return out;
    }

    @Override
    public void close() {
        if (previous == null) Conv2d.INPUT_HOOK.remove();
        else Conv2d.INPUT_HOOK.set(previous);
    }
}
