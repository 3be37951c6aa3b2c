// RUN: canonicalize dce
// A cond on a constant predicate is replaced by its taken branch's ops.
func.func @main(%x: tensor<f64>) -> tensor<f64> {
  %t = "gj.constant"() {value = dense<true> : tensor<i1>} : () -> tensor<i1>
  %f = "gj.less"(%x, %x) : (tensor<f64>, tensor<f64>) -> tensor<i1>
  %r = "gj.cond"(%t) ({
    %y = "gj.exp"(%x) : (tensor<f64>) -> tensor<f64>
    "gj.yield"(%y) : (tensor<f64>) -> ()
  }, {
    %z = "gj.tanh"(%x) : (tensor<f64>) -> tensor<f64>
    "gj.yield"(%z) : (tensor<f64>) -> ()
  }) : (tensor<i1>) -> tensor<f64>
  %s = "gj.cond"(%f) ({
    "gj.yield"(%x) : (tensor<f64>) -> ()
  }, {
    "gj.yield"(%r) : (tensor<f64>) -> ()
  }) : (tensor<i1>) -> tensor<f64>
  func.return %s : tensor<f64>
}
// The first cond goes; the second, on a predicate only known at run time, stays.
// CHECK:      func.func @main(%arg0: tensor<f64>) -> tensor<f64> {
// CHECK-NEXT:   [[F:%[0-9]+]] = "gj.less"(%arg0, %arg0
// CHECK-NEXT:   [[Y:%[0-9]+]] = "gj.exp"(%arg0
// CHECK-NEXT:   {{%[0-9]+}} = "gj.cond"([[F]]
// CHECK-NEXT:     "gj.yield"(%arg0
// CHECK-NEXT:   }, {
// CHECK-NEXT:     "gj.yield"([[Y]]
// CHECK-NOT:  "gj.tanh"
