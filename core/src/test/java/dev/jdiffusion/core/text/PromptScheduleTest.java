package dev.jdiffusion.core.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The prompt schedules of A1111's documented examples (its prompt_parser doctests), at 10 steps. */
class PromptScheduleTest {
    /** "[[3, 'a '], [10, 'a b']]" style: end step and text pairs. */
    private static String g(String prompt) {
        List<String> parts = new ArrayList<>();
        for (PromptSchedule.Entry e : PromptSchedule.of(prompt, 10)) {
            parts.add("[" + e.endAtStep() + ", '" + e.text() + "']");
        }
        return "[" + String.join(", ", parts) + "]";
    }

    @Test
    void promptEditing() {
        assertEquals("[[10, 'test']]", g("test"));
        assertEquals("[[3, 'a '], [10, 'a b']]", g("a [b:3]"));
        assertEquals("[[3, 'a '], [10, 'a b']]", g("a [b: 3]"));
        assertEquals("[[2, 'a '], [10, 'a [[b]]']]", g("a [[[b]]:2]"));
        assertEquals("[[3, ''], [10, '(a:2)']]", g("[(a:2):3]"));
        assertEquals("[[1, 'a b  d'], [10, 'a  c  d']]", g("a [b : c : 1] d"));
        assertEquals("[[1, 'abe'], [2, 'ace'], [10, 'ade']]", g("a[b:[c:d:2]:1]e"));
        assertEquals("[[10, 'a [unbalanced']]", g("a [unbalanced"));
        assertEquals("[[5, 'a  c'], [10, 'a b c']]", g("a [b:.5] c"));
        assertEquals("[[3, '((a][:b:c '], [10, '((a][:b:c d']]", g("((a][:b:c [d:3]"));
        assertEquals("[[4, 'a cat'], [10, 'a ']]", g("a [cat::0.4]"));
        assertEquals("[[10, 'x [y:z] (w:1.2)']]", g("x [y:z] (w:1.2)"), "no number: emphasis text, left to the emphasis parser");
        assertEquals("[[10, 'a [b:3] | c']]", g("a [b:3] | c"), "a bar outside an alternation: all plain text");
        assertEquals("[[1, 'a'], [10, 'b']]", g("[a:b:1]"), "an integer is a step, even 1");
        assertEquals("[[10, 'a']]", g("[a:b:1.0]"), "a decimal point makes it a fraction");
    }

    @Test
    void alternation() {
        assertEquals("[[1, 'a'], [2, '(b:1.1)'], [3, 'a'], [4, '(b:1.1)'], [5, 'a'], [6, '(b:1.1)'], [7, 'a'], [8, '(b:1.1)'], "
                + "[9, 'a'], [10, '(b:1.1)']]", g("[a|(b:1.1)]"));
        assertEquals("[[1, 'female'], [2, 'male'], [3, 'female'], [4, 'male'], [5, 'female'], [6, 'male'], [7, 'female'], "
                + "[8, 'male'], [9, 'female'], [10, 'male']]", g("[fe|]male"));
        assertEquals("[[1, 'female'], [2, 'male'], [3, 'male'], [4, 'male'], [5, 'female'], [6, 'male'], [7, 'male'], "
                + "[8, 'male'], [9, 'female'], [10, 'male']]", g("[fe|||]male"));
    }

    @Test
    void theEntryForAModelEvaluationIsCountedAsA1111CountsIt() {
        List<PromptSchedule.Entry> s = PromptSchedule.of("a [cat:dog:0.5]", 10);
        assertEquals("a cat", PromptSchedule.at(s, 0));
        assertEquals("a cat", PromptSchedule.at(s, 5));
        assertEquals("a dog", PromptSchedule.at(s, 6));
        assertEquals("a dog", PromptSchedule.at(s, 10));
        assertEquals("a cat", PromptSchedule.at(s, 11), "past the last entry A1111 falls back to the first");
        assertThrows(IllegalArgumentException.class, () -> PromptSchedule.of("x", 0));
    }

    @Test
    void andComposesPromptsWithTheirWeights() {
        List<PromptSchedule.Weighted> c = PromptSchedule.composable("a castle AND a dragon :0.7 AND [day:night:5]", 10);
        assertEquals(3, c.size());
        assertEquals(1.0, c.get(0).weight());
        assertEquals("a castle", c.get(0).schedule().get(0).text());
        assertEquals(0.7, c.get(1).weight());
        assertEquals(" a dragon", c.get(1).schedule().get(0).text());
        assertEquals(List.of(new PromptSchedule.Entry(5, " day"), new PromptSchedule.Entry(10, " night")), c.get(2).schedule());
        List<PromptSchedule.Weighted> words = PromptSchedule.composable("an ANDROID and a robot", 10);
        assertEquals(1, words.size(), "AND inside a word, or in lower case, is text");
        assertEquals("an ANDROID and a robot", words.get(0).schedule().get(0).text());
        List<PromptSchedule.Weighted> one = PromptSchedule.composable("a photo:1.5", 10);
        assertEquals(1.5, one.get(0).weight(), "a trailing :weight applies without AND too, as in A1111");
        assertEquals("(a photo:1.5)", PromptSchedule.composable("(a photo:1.5)", 10).get(0).schedule().get(0).text());
    }
}
