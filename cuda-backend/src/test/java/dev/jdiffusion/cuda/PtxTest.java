package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The PTX in the jar: made from the current kernel sources (the SHA-256 of the module's .cu and the
 * shared headers in its first line), in a
 * PTX ISA that drivers from CUDA 12.0 on load (8.0), for compute capability 8.0, and defining every
 * kernel the backend launches.
 */
class PtxTest {
    private static String resource(String module) throws Exception {
        try (InputStream in = CudaBackend.class.getResourceAsStream("/dev/jdiffusion/cuda/ptx/" + module + ".ptx")) {
            assertNotNull(in, module + ".ptx is not on the class path");
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        }
    }

    @Test
    void theShippedPtxIsMadeFromTheSourcesAndLoadsOnCuda12Drivers() throws Exception {
        for (String module : List.of("elementwise", "linalg")) {
            String ptx = resource(module);
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            digest.update(Files.readAllBytes(Path.of("src/main/cuda/" + module + ".cu")));
            try (var headers = Files.list(Path.of("src/main/cuda"))) {
                for (Path h : headers.filter(f -> f.toString().endsWith(".cuh")).sorted().toList()) {
                    digest.update(Files.readAllBytes(h));
                }
            }
            String sha = HexFormat.of().formatHex(digest.digest());
            String first = ptx.lines().findFirst().orElse("");
            assertTrue(first.contains("generated from " + module + ".cu sha256 " + sha + " "), first);
            assertTrue(ptx.contains("\n.version 8.0\n"), module + ": PTX ISA 8.0");
            assertTrue(ptx.contains("\n.target sm_80\n"), module + ": compute capability 8.0 and newer");
        }
        assertEquals(List.of("attention_f32", "attention_tc_f16", "conv2d_f32", "conv2d_tc_bf16", "conv2d_tc_f16", "gemm_f32", "gemm_tc_bf16",
                        "gemm_tc_f16", "mma_peak_bf16", "mma_peak_f16"),
                PtxFunctions.entries(resource("linalg")).stream().sorted().toList());
    }

    @Test
    void everyKernelTheBackendLaunchesIsDefined() throws Exception {
        List<String> entries = PtxFunctions.entries(resource("elementwise"));
        for (String k : List.of("silu_f32", "gelu_f32", "gelu_tanh_f32", "quick_gelu_f32", "geglu_f32", "scale_f32",
                "binary_f32", "layer_norm_f32", "group_norm_f32", "softmax_f32", "upsample_nearest2x_f32", "concat_part_f32",
                "permute_f32", "embedding_f32", "timestep_embedding_f32")) {
            assertTrue(entries.contains(k), k + " in " + entries);
        }
        assertEquals(List.of("a", "b_2"), PtxFunctions.entries(".visible .entry a(\n.param .u64 x\n)\n  .entry b_2 (\n.param .u32 n\n)\n"));
    }
}
