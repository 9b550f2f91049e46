import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

public class StackdCpuJob {
    public static void main(String[] args) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.fromSequence(0, Long.MAX_VALUE).name("Numbers")
            .map(new Burn()).name("Burn")
            .sinkTo(new DiscardingSink<>()).name("Discard");
        env.execute(args.length > 0 ? args[0] : "stackd cpu job");
    }

    public static class Burn extends RichMapFunction<Long, Long> {
        private transient Counter burned;
        private transient Histogram residues;

        @Override
        public void open(OpenContext ctx) {
            getRuntimeContext().getMetricGroup().gauge("stackdKnownGauge", () -> 42L);
            getRuntimeContext().getMetricGroup().gauge("stackdNegativeGauge", () -> -7L);
            burned = getRuntimeContext().getMetricGroup().counter("stackdBurned");
            residues = getRuntimeContext().getMetricGroup().histogram("stackdResidues", new DescriptiveStatisticsHistogram(1000));
        }

        @Override
        public Long map(Long v) {
            burned.inc();
            residues.update(v % 100);
            return spin(v);
        }

        static long spin(long x) {
            for (int i = 0; i < 20000; i++) {
                x = x * 6364136223846793005L + 1442695040888963407L;
            }
            return x;
        }
    }
}
