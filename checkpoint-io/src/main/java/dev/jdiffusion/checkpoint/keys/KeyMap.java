package dev.jdiffusion.checkpoint.keys;

import java.util.List;
import java.util.Map;

/**
 * The result of mapping names from one layout to another: each mapped name's counterpart (in the
 * input's order) and the names no rule covered.
 */
public record KeyMap(Map<String, String> mapped, List<String> unmapped) {
}
