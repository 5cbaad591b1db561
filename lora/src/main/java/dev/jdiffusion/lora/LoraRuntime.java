package dev.jdiffusion.lora;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.LayerAdapter;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Adapters applied beside the weights ({@link LayerAdapter}): a layer's output gets
 * strength · (alpha/rank) · up(down(x)) for each LoRA that names it (down a convolution with the
 * layer's kernel, stride and padding, up 1×1), so the weights stay untouched, switching adapters
 * costs nothing and several requests can use different adapters on one loaded model. LoHa, LoKr,
 * full differences and DoRA are applied as their full ΔW. Equal to {@link LoraMerge} within float32
 * rounding.
 */
public final class LoraRuntime implements LayerAdapter {
    /** One adapter's contribution to a layer: low-rank factors, or a full ΔW (down null). */
    private record Term(Tensor down, Tensor up, Tensor full, float factor) {
    }

    private final Map<String, List<Term>> terms;
    private final Map<String, List<String>> unmatched;

    private LoraRuntime(Map<String, List<Term>> terms, Map<String, List<String>> unmatched) {
        this.terms = terms;
        this.unmatched = unmatched;
    }

    /**
     * These adapters with their factors in the backend's memory (uploaded once here, not in every
     * step), in the type its weights compute in ({@link Backend#uploadWeight}); on the CPU backend
     * the same tensors.
     */
    public LoraRuntime on(Backend backend) {
        Map<String, List<Term>> moved = new HashMap<>();
        terms.forEach((key, list) -> moved.put(key, list.stream()
                .map(t -> new Term(up(backend, t.down()), up(backend, t.up()), up(backend, t.full()), t.factor())).toList()));
        return new LoraRuntime(moved, unmatched);
    }

    private static Tensor up(Backend backend, Tensor t) {
        return t == null ? null : backend.uploadWeight(t);
    }

    /** Per adapter, its modules that name no layer of the model (also logged, as by {@link LoraMerge}). */
    public Map<String, List<String>> unmatched() {
        return unmatched;
    }

    /**
     * The adapters for a model with these weights ({@code UNet} layers only: text-encoder modules are
     * left to {@link LoraMerge}, which is cheap for a network that runs once per prompt).
     */
    public static LoraRuntime of(Map<String, Tensor> weights, List<LoraMerge.Applied> loras) {
        return of(weights, loras, LoraTargets.of(LoraMerge.shapes(weights)));
    }

    /** As {@link #of(Map, List)} with the model's name table already built (it depends on the model alone). */
    public static LoraRuntime of(Map<String, Tensor> weights, List<LoraMerge.Applied> loras, LoraTargets targets) {
        Map<String, List<String>> unmatched = new HashMap<>();
        Map<String, List<LoraMerge.Job>> plan = LoraMerge.plan(weights, loras, targets, unmatched, true);
        Map<String, List<Term>> terms = new HashMap<>();
        for (Map.Entry<String, List<LoraMerge.Job>> e : plan.entrySet()) {
            for (LoraMerge.Job job : e.getValue()) {
                LoraModule m = job.module();
                LoraTargets.Target t = job.target();
                if (t.part() != LoraTargets.Part.UNET) {
                    continue;
                }
                if (m.isBias()) {
                    throw new IllegalArgumentException("LoRA module " + m.name() + " changes a bias; apply it by merging");
                }
                Tensor w = weights.get(job.key());
                Term term;
                if (m.kind() == LoraModule.Kind.LORA && !m.hasDora()) {
                    LoraModule.Factor down = m.part("down");
                    LoraModule.Factor up = m.part("up");
                    int out = w.dim(0);
                    float[] padded = new float[out * up.cols()];
                    System.arraycopy(up.data(), 0, padded, t.rowFrom() * up.cols(), up.data().length);
                    boolean conv = w.rank() == 4;
                    term = new Term(Tensor.of(down.data(), conv
                            ? new int[] {down.rows(), w.dim(1), w.dim(2), w.dim(3)} : new int[] {down.rows(), down.cols()}),
                            Tensor.of(padded, conv ? new int[] {out, up.cols(), 1, 1} : new int[] {out, up.cols()}), null,
                            (float) (job.strength() * m.scale()));
                } else {
                    // the full change: what applying this module alone to the weight adds
                    float[] before = w.toFloatArray();
                    float[] after = before.clone();
                    job.apply(after, w);
                    for (int i = 0; i < after.length; i++) {
                        after[i] -= before[i];
                    }
                    term = new Term(null, null, Tensor.of(after, w.shape()), 1);
                }
                terms.computeIfAbsent(job.key(), k -> new ArrayList<>()).add(term);
            }
        }
        return new LoraRuntime(terms, unmatched);
    }

    @Override
    public Tensor extra(Backend backend, String weightKey, Tensor x, boolean conv, int stride, int padding) {
        List<Term> list = terms.get(weightKey);
        if (list == null) {
            return null;
        }
        Tensor sum = null;
        for (Term t : list) {
            Tensor y;
            if (t.down() != null) {
                Tensor h = conv ? backend.conv2d(x, t.down(), null, stride, padding) : backend.linear(x, t.down(), null);
                y = conv ? backend.conv2d(h, t.up(), null, 1, 0) : backend.linear(h, t.up(), null);
                y = backend.scale(y, t.factor());
            } else {
                y = conv ? backend.conv2d(x, t.full(), null, stride, padding)
                        : backend.linear(x, t.full().reshape(t.full().dim(0), (int) (t.full().numel() / t.full().dim(0))), null);
            }
            sum = sum == null ? y : backend.add(sum, y);
        }
        return sum;
    }
}
