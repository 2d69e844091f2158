set terminal pngcairo size 900,520 font 'sans,10'
set output 'latency-8-oneway-shm-64-B-2000-s-10-subscribers.png'
set title "Latency by percentile: oneway · shm · 64 B · 2000/s · 10 subscribers (the run with the median p99)" noenhanced
set logscale xy
set xrange [1:1e6]
set xtics ('min' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000, 'max' 1000000)
set ylabel 'microseconds'
set grid xtics ytics mytics
set key top left
plot 'latency-8-oneway-shm-64-B-2000-s-10-subscribers.dat' index 0 using 1:2 with linespoints lw 2 title "brook"
