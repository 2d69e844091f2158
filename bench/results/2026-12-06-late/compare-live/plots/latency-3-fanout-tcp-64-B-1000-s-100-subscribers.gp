set terminal pngcairo size 900,520 font 'sans,10'
set output 'latency-3-fanout-tcp-64-B-1000-s-100-subscribers.png'
set title "Latency by percentile: fanout · tcp · 64 B · 1000/s · 100 subscribers (the run with the median p99)" noenhanced
set logscale xy
set xrange [1:1e6]
set xtics ('min' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000, 'max' 1000000)
set ylabel 'microseconds'
set grid xtics ytics mytics
set key top left
plot 'latency-3-fanout-tcp-64-B-1000-s-100-subscribers.dat' index 0 using 1:2 with linespoints lw 2 title "brook", \
     'latency-3-fanout-tcp-64-B-1000-s-100-subscribers.dat' index 1 using 1:2 with linespoints lw 2 title "mqtt", \
     'latency-3-fanout-tcp-64-B-1000-s-100-subscribers.dat' index 2 using 1:2 with linespoints lw 2 title "nats", \
     'latency-3-fanout-tcp-64-B-1000-s-100-subscribers.dat' index 3 using 1:2 with linespoints lw 2 title "redis"
